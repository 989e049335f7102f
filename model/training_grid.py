"""The training image grid for TensorBoard: frames, labels and predictions of a few triplets."""
import numpy as np
import torch

from util.image_io import DAVIS_PALETTE
from util.overlay import label_image, text_width


def colour_classes(cls_map):
    """long [H, W] class map (-1 ignored) -> float [3, H, W]: DAVIS colours, ignored = white."""
    pal = torch.as_tensor(DAVIS_PALETTE[:3].astype(np.float32) / 255.0)    # bg, 1, 2
    c = cls_map.detach().cpu().long()
    out = pal[c.clamp(0, 2)].permute(2, 0, 1).clone()                       # [3, H, W]
    out[:, c < 0] = 1.0
    return out


GRID_ROWS = ('frames', 'labels', 'targets', 'prediction')
GRID_LEGEND = ('frames 0, 1, 2', 'labels (white: none)', 'loss targets (pseudo labels)',
               'prediction')


def _text_cell(text, h, w, text_height):
    """float [3, h, w] in [0, 1]: white text on dark grey."""
    img = label_image(text, h, w, text_height=text_height)
    return torch.from_numpy(img).permute(2, 0, 1).float() / 255.0


def _pad_right(cell, width):
    """Pad a [3, h, w] legend cell on the right to `width` with its background."""
    if cell.shape[2] >= width:
        return cell
    extra = cell[:, :, -1:].expand(-1, -1, width - cell.shape[2])
    return torch.cat([cell, extra], dim=2)


def training_grid(images, labels, targets, pred, max_samples=4):
    """One image per log point: for each sample four rows, each named in a legend column.

    images float [B, 3, 3, H, W] in [0, 1] (the triplet, un-normalised); labels long
    [B, 3, H, W] as the data set gave them (true labels, in phase 2 also bank labels; -1 none);
    targets long [B, 3, H, W] what the loss saw for frames 1, 2 (labels, plus pseudo labels on
    unlabeled frames; -1 ignored); pred long [B, 2, H, W] the argmax of frames 1, 2.
    Rows: frames | labels | targets | prediction; columns: frames 0, 1, 2 (frame 0, the
    reference, has no target nor prediction: a dark cell). Returns float [3, rows, cols] in
    [0, 1].
    """
    h, w = images.shape[-2:]
    th = min(32, max(10, h // 6))
    legend_w = max(text_width(t, th) for t in GRID_LEGEND) + 2 * max(2, th // 5)
    blank = torch.full((3, h, w), 0.1)
    rows = []
    for b in range(min(max_samples, images.shape[0])):
        cells = {
            'frames': [images[b, t].detach().float().cpu().clamp(0, 1) for t in range(3)],
            'labels': [colour_classes(labels[b, t]) for t in range(3)],
            'targets': [blank] + [colour_classes(targets[b, t]) for t in (1, 2)],
            'prediction': [blank] + [colour_classes(pred[b, t]) for t in range(2)],
        }
        for name, legend in zip(GRID_ROWS, GRID_LEGEND):
            text = f'{b}: {legend}'
            cell = _text_cell(text, h, max(legend_w, text_width(text, th) + 8), th)
            rows.append((cell, torch.cat(cells[name], dim=2)))
    lw = max(c.shape[2] for c, _ in rows)
    out = [torch.cat([_pad_right(c, lw), r], dim=2) for c, r in rows]
    return torch.cat(out, dim=1)
