"""The training loss and its targets (docs/method.md, "Training" and "Pseudo labels").

A change to the loss, or to the class maps it is computed against, is made here: the
bootstrapped cross-entropy over frames 1 and 2 of each triplet (LossComputer), the warm-up /
phase-1 / phase-2 targets (labeled_targets, semi_targets, refresh_targets) and the pseudo-label
rule. The networks' forwards that give the pseudo labels' logits stay in model/trainer.py.

Class maps: long [B, H, W] (one frame) or [B, 3, H, W] (a triplet) with 0 background,
1 target object, 2 second object, -1 ignored. Triplet logits: [B, K+1, H, W] per frame,
K = 2 objects (1 in stage 0).
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


def class_probs(logits):
    """[B, K+1, H, W] logits -> (bg, target, second or None) probabilities, each [B, H, W]."""
    prob = torch.softmax(logits.float(), dim=1)
    return prob[:, 0], prob[:, 1], (prob[:, 2] if prob.shape[1] > 2 else None)


def bank_trigger(old, new, p_target, p_second, thres, has_second):
    """[B] bool: does the refresh of one frame ask for a bank rewrite of its sample?

    old / new [B, H, W] class maps before / after the refresh; p_target, p_second [B, H, W]
    class probabilities (p_second None for one object); has_second [B] bool. The old target
    region is taken after the second object's confident pixels are set (the order the labels
    are refreshed in); the request is: its size changed and some confident target pixel lies
    outside it.
    """
    if p_second is not None:
        old = torch.where((p_second >= thres) & has_second[:, None, None], 2, old)
    old_t = old == 1
    grew = ((p_target >= thres) & ~old_t).flatten(1).any(1)
    changed = old_t.flatten(1).sum(1) != (new == 1).flatten(1).sum(1)
    return changed & grew


# ----------------------------------------------------------------------------- targets

def labeled_targets(cls_gt, labeled):
    """Labeled-only training (base mode): frames 1-2 without a true label are ignored.

    cls_gt [B, 3, H, W]; labeled bool [B, 3]. Returns a new [B, 3, H, W]."""
    cls_gt = cls_gt.clone()
    cls_gt[:, 1:] = cls_gt[:, 1:].masked_fill(~labeled[:, 1:, None, None], IGNORE)
    return cls_gt


def semi_targets(cls_gt, labeled, ref_logits, thres, has_second):
    """Phase 1 (semi mode): unlabeled frames 1-2 get the pseudo labels of `ref_logits`.

    cls_gt [B, 3, H, W]; labeled bool [B, 3]; ref_logits (frame 1, frame 2) [B, K+1, H, W];
    has_second bool [B]. Returns (new [B, 3, H, W], {'pseudo/coverage': share of the
    unlabeled pixels that got a label})."""
    cls_gt = cls_gt.clone()
    for f in (1, 2):
        pl = pseudo_labels(*class_probs(ref_logits[f - 1]), thres, has_second)
        cls_gt[:, f] = torch.where(labeled[:, f, None, None], cls_gt[:, f], pl)
    sel = (~labeled[:, 1:])[:, :, None, None].expand_as(cls_gt[:, 1:])
    return cls_gt, {'pseudo/coverage': float((cls_gt[:, 1:][sel] != IGNORE).float().mean())}


def refresh_targets(cls_gt, frozen, ref_logits, thres, has_second):
    """Phase 2 (phase2 mode, from --phase2_start_update): the bank labels of frames 1-2 are
    overwritten where `ref_logits` is confident (>= thres) and kept elsewhere; `frozen` frames
    (--phase2_keep_true_labels) stay untouched.

    cls_gt [B, 3, H, W]; frozen bool [B, 2] (frames 1, 2); ref_logits (frame 1, frame 2)
    [B, K+1, H, W]; has_second bool [B]. Returns (new [B, 3, H, W], wanted bool [B, 2]: the
    frames asking for a bank rewrite (bank_trigger), {'pseudo/refresh_confident',
    'pseudo/refresh_changed'})."""
    old = cls_gt
    cls_gt = cls_gt.clone()
    wanted = torch.zeros_like(frozen)
    confident = torch.zeros_like(cls_gt[:, 1:], dtype=torch.bool)           # [B, 2, H, W]
    for f in (1, 2):
        bg, p_t, p_s = class_probs(ref_logits[f - 1])
        pl = pseudo_labels(bg, p_t, p_s, thres, has_second)
        confident[:, f - 1] = pl != IGNORE
        keep = frozen[:, f - 1, None, None] | (pl == IGNORE)
        cls_gt[:, f] = torch.where(keep, cls_gt[:, f], pl)
        wanted[:, f - 1] = bank_trigger(old[:, f], cls_gt[:, f], p_t, p_s, thres,
                                        has_second) & ~frozen[:, f - 1]
    sel = (~frozen)[:, :, None, None].expand_as(cls_gt[:, 1:])
    # the share of the refreshed frames' pixels that pass thres (a bank labels every pixel)
    stats = {'pseudo/refresh_confident': float(confident[sel].float().mean()),
             'pseudo/refresh_changed': float(
                 (cls_gt[:, 1:][sel] != old[:, 1:][sel]).float().mean())}
    return cls_gt, wanted, stats


# ----------------------------------------------------------------------------- the loss

class LossComputer:
    """The loss of one triplet batch: bootstrapped CE over frames 1 and 2 (`ce`), 3 classes,
    or 2 for a sample without a second object; each frame's loss is the mean over samples.
    Also the IoU of the predictions on the labeled pixels."""

    def __init__(self, para):
        self.ce = BootstrappedCE(para['bce_start_warm'], para['bce_end_warm'])

    def compute(self, out, cls_gt, has_second, it):
        """out: triplet_forward's {'logits_1', 'logits_2' [B, K+1, H, W], 'prob_1', 'prob_2'
        [B, K, H, W]}; cls_gt [B, 3, H, W]; has_second bool [B].
        Returns (total loss, {'loss/ce_1', 'loss/ce_2', 'loss/total', 'loss/bootstrap_p',
        'iou/target', 'iou/second'})."""
        b = cls_gt.shape[0]
        stats = {}
        total = 0.0
        for f in (1, 2):
            logits = out[f'logits_{f}'].float()
            loss_f = 0.0
            for j in range(b):
                n_cls = 3 if bool(has_second[j]) else 2
                loss_j, p = self.ce(logits[j:j + 1, :n_cls], cls_gt[j:j + 1, f], it)
                loss_f = loss_f + loss_j / b
            stats[f'loss/ce_{f}'] = float(loss_f.detach())
            total = total + loss_f
        stats['loss/total'] = float(total.detach())
        stats['loss/bootstrap_p'] = p
        stats.update(iou_stats(out, cls_gt, has_second))
        return total, stats


@torch.no_grad()
def iou_stats(out, cls_gt, has_second):
    """IoU of the target (and second) object over frames 1, 2, on labeled pixels only."""
    res = {}
    for name, k, rows in (('iou/target', 0, slice(None)), ('iou/second', 1, has_second)):
        if out['prob_1'].shape[1] <= k:          # one object (stage 0)
            continue
        inter = union = 0.0
        for f in (1, 2):
            prob = out[f'prob_{f}'][:, k][rows]
            gt = cls_gt[:, f][rows]
            if prob.numel() == 0:
                continue
            valid = gt != IGNORE
            i, u = compute_tensor_iu((prob > 0.5) & valid, (gt == k + 1) & valid)
            inter, union = inter + float(i), union + float(u)
        if k == 0 or bool(has_second.any()):
            res[name] = (inter + 1e-6) / (union + 1e-6)
    return res
