"""Padding to a multiple of 16 and back; the class index of probabilities."""
import torch
import torch.nn.functional as F


def pad_divide_by(x, d=16):
    """Pad the last two dims of x to multiples of d, split evenly (extra on bottom/right).

    Returns the padded tensor and pad = (left, right, top, bottom) for `unpad`.
    """
    h, w = x.shape[-2:]
    new_h = h + (-h) % d
    new_w = w + (-w) % d
    top, left = (new_h - h) // 2, (new_w - w) // 2
    pad = (left, new_w - w - left, top, new_h - h - top)
    return (F.pad(x, pad) if any(pad) else x), pad


def unpad(x, pad):
    """Undo pad_divide_by on the last two dims."""
    left, right, top, bottom = pad
    h, w = x.shape[-2:]
    return x[..., top:h - bottom, left:w - right]


def argmax_classes(p):
    """p [C, H, W] (finite, C <= 256) -> uint8 [H, W]: the index of the largest class, the
    first on ties, as p.argmax(0). One elementwise pass per class: argmax along the outer,
    strided dimension is slow on a CPU."""
    best = p[0].clone()
    index = torch.zeros(p.shape[1:], dtype=torch.uint8, device=p.device)
    for c in range(1, p.shape[0]):
        index.masked_fill_(p[c] > best, c)
        torch.maximum(best, p[c], out=best)
    return index
