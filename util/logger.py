"""TensorBoard logging for training: averaged scalars, images (see model/training_grid.py).

Only the main process writes (the others pass enabled=False); the scalars of all ranks are
averaged by the caller (util.distributed.average_over_ranks) before logging.
"""
import numpy as np
import torch


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
    """SummaryWriter in `log_dir`, created at the first write (a run that fails before its
    first log leaves no event file); a no-op when disabled."""

    def __init__(self, log_dir, enabled=True):
        self.log_dir = log_dir if enabled else None
        self.writer = None

    def _writer(self):
        if self.writer is None and self.log_dir:
            from torch.utils.tensorboard import SummaryWriter
            self.writer = SummaryWriter(log_dir=self.log_dir)
        return self.writer

    def log_scalars(self, values, it, prefix='train'):
        if self._writer() is None:
            return
        for k, v in sorted(values.items()):
            self.writer.add_scalar(f'{prefix}/{k}', v, it)

    def log_image(self, tag, image_chw, it):
        """image_chw: float [3, H, W] in [0, 1] or uint8."""
        if self._writer() is not None:
            self.writer.add_image(tag, image_chw, it)

    def log_text(self, tag, text, it=0):
        if self._writer() is not None:
            self.writer.add_text(tag, text, it)

    def flush(self):
        if self.writer is not None:
            self.writer.flush()

    def close(self):
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        self.log_dir = None
