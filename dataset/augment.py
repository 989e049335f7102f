"""Augmentation pieces shared by the training datasets (docs/method.md, "Training").

Random parameters are drawn once with torchvision's own `get_params` (torch's global RNG,
so `dataset.reseed.reseed` makes them reproducible) and then applied with the functional API
to the image (bicubic) and to its index mask (nearest), so both always see the same warp.
Images are PIL RGB, masks PIL 'L' index images (ids 0..255) until `to_normalized_tensor`.
"""
import numpy as np
import torch
import torchvision.transforms as T
import torchvision.transforms.functional as TF
from PIL import Image

from dataset.range_transform import IMAGENET_MEAN, im_normalization

BICUBIC = TF.InterpolationMode.BICUBIC
BILINEAR = TF.InterpolationMode.BILINEAR
NEAREST = TF.InterpolationMode.NEAREST
IM_MEAN_FILL = tuple(int(round(255 * m)) for m in IMAGENET_MEAN)   # (124, 116, 104)
STCN_RATIO = (3 / 4, 4 / 3)


def rand():
    """One uniform float in [0, 1) from torch's global RNG."""
    return float(torch.rand(1))


def randint(lo, hi):
    """One integer uniform in [lo, hi] (both inclusive) from torch's global RNG."""
    return int(torch.randint(lo, hi + 1, (1,)))


def choice(seq):
    return seq[randint(0, len(seq) - 1)]


# ---------------------------------------------------------------- colour

def sample_jitter(brightness, contrast, saturation, hue=0.0):
    """ColorJitter parameters (order, b, c, s, h) as torchvision draws them."""
    cj = T.ColorJitter(brightness, contrast, saturation, hue)
    return cj.get_params(cj.brightness, cj.contrast, cj.saturation, cj.hue)


def apply_jitter(img, params):
    order, b, c, s, h = params
    for k in order.tolist():
        if k == 0 and b is not None:
            img = TF.adjust_brightness(img, b)
        elif k == 1 and c is not None:
            img = TF.adjust_contrast(img, c)
        elif k == 2 and s is not None:
            img = TF.adjust_saturation(img, s)
        elif k == 3 and h is not None:
            img = TF.adjust_hue(img, h)
    return img


def to_gray(img):
    return TF.rgb_to_grayscale(img, num_output_channels=3)


# ---------------------------------------------------------------- geometry

def sample_crop(img, scale, ratio=STCN_RATIO):
    """RandomResizedCrop box (top, left, height, width) for a PIL image."""
    return T.RandomResizedCrop.get_params(img, list(scale), list(ratio))


def apply_crop(img, box, size, is_mask):
    return TF.resized_crop(img, *box, [size, size], interpolation=NEAREST if is_mask else BICUBIC)


def sample_affine(size_wh, degrees, shear, scale=None):
    """RandomAffine parameters (angle, translate, scale, shear) for an image of size (W, H)."""
    ra = T.RandomAffine(degrees, scale=scale, shear=shear)
    return ra.get_params(ra.degrees, ra.translate, ra.scale, ra.shear, list(size_wh))


def apply_affine(img, params, is_mask):
    angle, translate, scale, shear = params
    if is_mask:
        return TF.affine(img, angle, list(translate), scale, list(shear),
                         interpolation=NEAREST, fill=0)
    return TF.affine(img, angle, list(translate), scale, list(shear),
                     interpolation=BICUBIC, fill=list(IM_MEAN_FILL))


def hflip(img):
    return TF.hflip(img)


# ---------------------------------------------------------------- conversion

def to_pil_image(arr):
    """uint8 [H, W, 3] -> PIL RGB."""
    return Image.fromarray(np.ascontiguousarray(arr, dtype=np.uint8))


def to_pil_mask(arr):
    """uint8 [H, W] index mask -> PIL 'L' (ids kept as values)."""
    return Image.fromarray(np.ascontiguousarray(arr, dtype=np.uint8))


def to_normalized_tensor(img):
    """PIL RGB -> float [3, H, W], ImageNet-normalised."""
    return im_normalization(TF.to_tensor(img))
