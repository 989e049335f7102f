"""Pseudo-video triplets from single images with a binary mask (stage 0, STCN's static data).

    <root>/<name>.jpg + <root>/<name>.png                 method=1 (DUTS, ECSSD, HRSOD, BIG)
    <root>/<class>/<n>.jpg + <root>/<class>/<n>.png       method=0 (FSS-1000, listed recursively)

Method 0 images (FSS: small squares) are resized to crop_size x crop_size; method 1 images
(often large) are resized so the shorter side is crop_size and each frame takes its own random
crop_size x crop_size crop. Every one of the three frames then gets its own random affine
(20 deg, scale 0.9..1.1, shear 10), a thin-plate-spline warp (dataset/tps.py) and a small
colour jitter; a shared colour jitter, grayscale (p=0.05) and horizontal flip complete it.

Item (C = crop_size): the keys of dataset.vos_dataset.VOSDataset, single object:
    rgb float [3, 3, C, C], gt float [3, 1, C, C], sec_gt zeros [3, 1, C, C],
    cls_gt long [3, C, C] in {0, 1}, selector [1, 0], labeled all True,
    info {name, frames=[name]*3, target_id=1, second_id=0}.
"""
import os

import numpy as np
import torch
import torchvision.transforms.functional as TF
from torch.utils.data import Dataset

from dataset import augment as A
from dataset.tps import random_tps_warp
from util.errors import UserError
from util.image_io import read_frame, read_mask
from util.layout import JPEG_EXTS

TPS_SCALE = 0.02
TPS_POINTS = 5


def _find_pairs(root, recursive):
    """Sorted [(name, jpg path, png path)]; name = path below root without extension."""
    pairs = []
    walker = os.walk(root) if recursive else [(root, [], os.listdir(root))]
    for folder, dirs, files in walker:
        dirs[:] = sorted(d for d in dirs if not d.startswith('.'))
        names = set(files)
        for f in sorted(files):
            stem, ext = os.path.splitext(f)
            if f.startswith('.') or ext.lower() not in JPEG_EXTS:
                continue
            png = stem + '.png'
            if png not in names:
                raise UserError(f'{os.path.join(folder, png)}: mask of image {f} not found')
            rel = os.path.relpath(os.path.join(folder, stem), root)
            pairs.append((rel, os.path.join(folder, f), os.path.join(folder, png)))
    return sorted(pairs)


def binarize(mask):
    """Index / grayscale mask uint8 [H, W] -> 0/1: ids > 0, or >= 128 for 0..255 masks."""
    return (mask >= 128) if mask.max() > 1 else (mask > 0)


class StaticTransformDataset(Dataset):
    def __init__(self, root, method=0, crop_size=384):
        self.root = str(root)
        if method not in (0, 1):
            raise ValueError('method must be 0 (FSS, recursive) or 1 (flat folder)')
        if not os.path.isdir(self.root):
            raise UserError(f'{self.root}: static image folder not found')
        self.method = method
        self.crop_size = int(crop_size)
        self.items = _find_pairs(self.root, recursive=(method == 0))
        if not self.items:
            raise UserError(f'{self.root}: no .jpg images with .png masks found')

    def __len__(self):
        return len(self.items)

    def _base(self, im, mask):
        """Resize (method 0: to C x C; method 1: shorter side to C). PIL image and mask."""
        c = self.crop_size
        if self.method == 0:
            size = [c, c]
        else:
            w, h = im.size
            size = [c, max(c, round(w * c / h))] if h <= w else [max(c, round(h * c / w)), c]
        return (TF.resize(im, size, interpolation=A.BICUBIC),
                TF.resize(mask, size, interpolation=A.NEAREST))

    def __getitem__(self, idx):
        name, jpg, png = self.items[idx]
        im = read_frame(jpg)
        mask = read_mask(png)
        if mask.shape != im.shape[:2]:
            raise UserError(f'{png}: mask size {mask.shape[::-1]} differs from its image '
                            f'{im.shape[1::-1]}')
        im, mask = self._base(A.to_pil_image(im), A.to_pil_mask(binarize(mask)))
        c = self.crop_size
        flip = A.rand() < 0.5
        jitter = A.sample_jitter(0.1, 0.03, 0.03, 0)
        gray = A.rand() < 0.05
        rng = np.random.default_rng(int(torch.randint(0, 2 ** 62, (1,))))   # TPS offsets
        ims, masks = [], []
        for _ in range(3):
            f_im, f_mask = im, mask
            if f_im.size != (c, c):                    # method 1: a crop per frame
                w, h = f_im.size
                top, left = A.randint(0, h - c), A.randint(0, w - c)
                f_im = TF.crop(f_im, top, left, c, c)
                f_mask = TF.crop(f_mask, top, left, c, c)
            aff = A.sample_affine((c, c), degrees=20, shear=10, scale=(0.9, 1.1))
            f_im = A.apply_affine(f_im, aff, is_mask=False)
            f_mask = A.apply_affine(f_mask, aff, is_mask=True)
            w_im, w_mask = random_tps_warp(np.asarray(f_im), np.asarray(f_mask),
                                           scale=TPS_SCALE, n_points=TPS_POINTS, rng=rng)
            f_im, f_mask = A.to_pil_image(w_im), A.to_pil_mask(w_mask)
            if flip:
                f_im, f_mask = A.hflip(f_im), A.hflip(f_mask)
            f_im = A.apply_jitter(f_im, jitter)
            if gray:
                f_im = A.to_gray(f_im)
            f_im = A.apply_jitter(f_im, A.sample_jitter(0.1, 0.05, 0.05, 0))
            ims.append(A.to_normalized_tensor(f_im))
            masks.append(torch.from_numpy(np.asarray(f_mask, dtype=np.int64)))
        cls_gt = torch.stack(masks, 0)                              # [3, C, C] in {0, 1}
        gt = cls_gt.unsqueeze(1).float()                            # [3, 1, C, C]
        return {
            'rgb': torch.stack(ims, 0),
            'gt': gt,
            'sec_gt': torch.zeros_like(gt),
            'cls_gt': cls_gt,
            'selector': torch.tensor([1.0, 0.0]),
            'labeled': torch.ones(3, dtype=torch.bool),
            'info': {'name': name, 'frames': [name] * 3, 'target_id': 1, 'second_id': 0},
        }
