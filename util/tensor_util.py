"""Padding to a multiple of 16 and back."""
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
