"""TensorBoard logging for training: averaged scalars and image grids.

Only the main process writes (the others pass enabled=False); the scalars of all ranks are
averaged by the caller (util.distributed.average_over_ranks) before logging.
"""
import numpy as np
import torch

from dataset.range_transform import inv_im_trans
from util.io import DAVIS_PALETTE


class ScalarAverager:
    """Accumulates named scalars between two log points."""

    def __init__(self):
        self.sums, self.counts = {}, {}

    def add(self, values):
        for k, v in values.items():
            if v is None:
                continue
            v = float(v.detach()) if isinstance(v, torch.Tensor) else float(v)
            if not np.isfinite(v):
                continue
            self.sums[k] = self.sums.get(k, 0.0) + v
            self.counts[k] = self.counts.get(k, 0) + 1

    def means(self):
        return {k: self.sums[k] / self.counts[k] for k in self.sums}

    def reset(self):
        self.sums, self.counts = {}, {}


class TensorboardLogger:
    """SummaryWriter in `log_dir` (created lazily); a no-op when disabled."""

    def __init__(self, log_dir, enabled=True):
        self.writer = None
        if enabled and log_dir:
            from torch.utils.tensorboard import SummaryWriter
            self.writer = SummaryWriter(log_dir=log_dir)

    def log_scalars(self, values, it, prefix='train'):
        if self.writer is None:
            return
        for k, v in sorted(values.items()):
            self.writer.add_scalar(f'{prefix}/{k}', v, it)

    def log_image(self, tag, image_chw, it):
        """image_chw: float [3, H, W] in [0, 1] or uint8."""
        if self.writer is None:
            return
        self.writer.add_image(tag, image_chw, it)

    def log_text(self, tag, text, it=0):
        if self.writer is not None:
            self.writer.add_text(tag, text, it)

    def flush(self):
        if self.writer is not None:
            self.writer.flush()

    def close(self):
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def colour_classes(cls_map):
    """long [H, W] class map (-1 ignored) -> float [3, H, W]: DAVIS colours, ignored = white."""
    pal = torch.as_tensor(DAVIS_PALETTE[:3].astype(np.float32) / 255.0)    # bg, 1, 2
    c = cls_map.detach().cpu().long()
    out = pal[c.clamp(0, 2)].permute(2, 0, 1).clone()                       # [3, H, W]
    out[:, c < 0] = 1.0
    return out


def training_grid(rgb, cls_gt, pred, max_samples=4):
    """One image of rows = samples, columns = frames 0..2 images | labels | predictions.

    rgb [B, 3, 3, H, W] (normalised), cls_gt long [B, 3, H, W], pred long [B, 2, H, W]
    (argmax classes of frames 1 and 2). Returns float [3, rows*H, 9*W] in [0, 1].
    """
    rows = []
    for b in range(min(max_samples, rgb.shape[0])):
        cells = [inv_im_trans(rgb[b, t].detach().float().cpu()).clamp(0, 1) for t in range(3)]
        cells += [colour_classes(cls_gt[b, t]) for t in range(3)]
        cells += [torch.zeros_like(cells[0])] + [colour_classes(pred[b, t]) for t in range(2)]
        rows.append(torch.cat(cells, dim=2))
    return torch.cat(rows, dim=1)
