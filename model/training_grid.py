"""The training image grid for TensorBoard: frames, labels and predictions of a few triplets."""
import numpy as np
import torch

from dataset.range_transform import inv_im_trans
from util.io import DAVIS_PALETTE


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
