"""Training losses and label helpers (docs/method.md, "Training").

Class maps: long [B, H, W] with 0 background, 1 target object, 2 second object, -1 ignored.
"""
import torch
import torch.nn.functional as F

IGNORE = -1


def bootstrap_fraction(it, start_warm, end_warm, top_p=0.15):
    """Fraction of the hardest valid pixels kept at iteration `it`.

    1 before start_warm, then falling linearly to top_p at end_warm, top_p afterwards.
    """
    if it < start_warm:
        return 1.0
    if it >= end_warm or end_warm <= start_warm:
        return top_p
    return 1.0 - (1.0 - top_p) * (it - start_warm) / (end_warm - start_warm)


class BootstrappedCE:
    """Cross-entropy with ignore_index -1; after start_warm only the hardest p fraction of pixels.

    Difference from the original STCN loss (a deliberate fix): the top-k is taken over the
    VALID pixels only and k = p * (number of valid pixels). The original ran top-k over all
    pixels, so ignored pixels (loss 0) counted in k and diluted the mean; with many ignored
    pixels (pseudo labels below the threshold) that changes the effective fraction.
    """

    def __init__(self, start_warm=20000, end_warm=70000, top_p=0.15):
        self.start_warm = start_warm
        self.end_warm = end_warm
        self.top_p = top_p

    def __call__(self, logits, target, it):
        """logits [B, C, H, W] (float), target long [B, H, W] -> (scalar loss, p).

        A target value >= C (e.g. a second-object label when only 2 classes are scored) is
        ignored too. With no valid pixel the loss is an exact 0 that still has a graph.
        """
        target = target.masked_fill(target >= logits.shape[1], IGNORE)
        raw = F.cross_entropy(logits, target, ignore_index=IGNORE, reduction='none')  # [B, H, W]
        valid = target != IGNORE
        n_valid = int(valid.sum())
        p = bootstrap_fraction(it, self.start_warm, self.end_warm, self.top_p)
        if n_valid == 0:
            return logits.sum() * 0.0, p
        losses = raw[valid]                                                        # [n_valid]
        if p < 1.0:
            k = max(1, int(n_valid * p))
            losses, _ = torch.topk(losses, k, sorted=False)
        return losses.mean(), p


def compute_tensor_iu(pred, gt):
    """Intersection and union counts of two bool tensors (any shape)."""
    inter = (pred & gt).float().sum()
    union = (pred | gt).float().sum()
    return inter, union


def pseudo_labels(prob_bg, prob_t, prob_s, thres, has_second):
    """Pseudo class map from aggregated probabilities (docs/method.md, "Pseudo labels").

    prob_bg, prob_t, prob_s: [B, H, W] (prob_s may be None when there is no second object);
    has_second: bool, or bool tensor [B] (per sample). Start all -1 (ignored); then 2 where the
    second-object prob >= thres (only for samples that have a second object); then 1 where the
    target prob >= thres; then 0 where the background prob >= thres. Later assignments win.
    Returns long [B, H, W].
    """
    out = torch.full(prob_t.shape, IGNORE, dtype=torch.long, device=prob_t.device)
    if prob_s is not None:
        hs = torch.as_tensor(has_second, dtype=torch.bool, device=prob_t.device)
        if hs.dim() == 0:
            hs = hs.expand(prob_t.shape[0])
        sec = (prob_s >= thres) & hs.view(-1, *([1] * (prob_s.dim() - 1)))
        out[sec] = 2
    out[prob_t >= thres] = 1
    out[prob_bg >= thres] = 0
    return out
