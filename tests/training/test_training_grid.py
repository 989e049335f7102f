"""The TensorBoard image grid: frames, labels, loss targets (pseudo labels) and predictions,
one legend-named row each; do_pass logs what the data set gave and what the loss saw."""
import numpy as np
import torch

from helpers import C, TargetRecorder, make_batch, make_model, step
from model.losses import IGNORE
from model.training_grid import GRID_ROWS, colour_classes, training_grid
from util.image_io import DAVIS_PALETTE


class ImageRecorder:
    def __init__(self):
        self.images = []

    def log_image(self, tag, image, it):
        self.images.append((tag, image.clone(), it))

    def log_scalars(self, values, it, prefix='train'):
        pass


def _cells(grid, b_count, h, w):
    """{(sample, row name, column): [3, h, w]} and the legend strip of the grid."""
    lw = grid.shape[2] - 3 * w
    out = {}
    for b in range(b_count):
        for r, name in enumerate(GRID_ROWS):
            y = (b * len(GRID_ROWS) + r) * h
            for t in range(3):
                out[b, name, t] = grid[:, y:y + h, lw + t * w:lw + (t + 1) * w]
    return out, grid[:, :, :lw]


def test_grid_rows_and_legend():
    h, w, b = 24, 20, 2
    images = torch.rand(b, 3, 3, h, w)
    labels = torch.full((b, 3, h, w), IGNORE, dtype=torch.long)
    labels[:, 0] = 0
    labels[:, 0, 5:15, 5:15] = 1
    targets = labels.clone()
    targets[:, 1] = 2                                    # a pseudo label where none was given
    pred = torch.ones(b, 2, h, w, dtype=torch.long)
    grid = training_grid(images, labels, targets, pred)
    assert grid.shape[1] == b * len(GRID_ROWS) * h and grid.dtype == torch.float32
    cells, legend = _cells(grid, b, h, w)
    for s in range(b):
        for t in range(3):
            assert torch.equal(cells[s, 'frames', t], images[s, t])
            assert torch.equal(cells[s, 'labels', t], colour_classes(labels[s, t]))
        assert torch.equal(cells[s, 'targets', 1], colour_classes(targets[s, 1]))
        pal2 = torch.tensor(DAVIS_PALETTE[2] / 255.0, dtype=torch.float32)
        assert torch.allclose(cells[s, 'targets', 1][:, 0, 0], pal2)
        assert (cells[s, 'labels', 1] == 1).all()       # no label: white
        assert torch.equal(cells[s, 'prediction', 2], colour_classes(pred[s, 1]))
    # every row has legend text (light pixels on the dark strip)
    for r in range(b * len(GRID_ROWS)):
        assert (legend[:, r * h:(r + 1) * h] > 0.7).any()


def test_do_pass_logs_labels_and_loss_targets():
    model = make_model('--semi', '--end_warm', '0', '--semi_thres_upper', '0.3',
                       '--image_every', '1')
    model.logger = ImageRecorder()
    model.losses.ce = TargetRecorder(model.losses.ce)
    batch = make_batch(labeled=(True, False, True), b=2)
    step(model, batch, 1)                               # semi from it > end_warm
    (tag, grid, it), = model.logger.images
    assert tag == 'train/triplets' and it == 2
    cells, _ = _cells(grid, 2, C, C)
    seen = model.losses.ce.frame_targets(2)               # [frame 1 [B, H, W], frame 2]
    for s in range(2):
        assert (cells[s, 'labels', 1] == 1).all()       # frame 1 unlabeled in the data
        assert torch.equal(cells[s, 'targets', 1], colour_classes(seen[0][s]))
        assert torch.equal(cells[s, 'targets', 2], colour_classes(seen[1][s]))
        assert torch.equal(cells[s, 'labels', 2], colour_classes(batch['cls_gt'][s, 2]))
    assert (seen[0] != IGNORE).any()                    # pseudo labels were made and shown
    assert not np.allclose(cells[0, 'frames', 0].numpy(), 0)
