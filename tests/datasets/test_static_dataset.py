"""Thin-plate-spline warp and the static-image pseudo-triplet dataset."""
import os

import numpy as np
import pytest
import torch
from PIL import Image
from tps import ThinPlateSpline

from dataset.range_transform import inv_im_trans
from dataset.reseed import reseed
from dataset.static_dataset import StaticTransformDataset
from dataset.tps import MAP_GRID, backward_map, random_control_points, random_tps_warp
from util.errors import UserError
from util.image_io import write_mask
from scripts.data.synthetic_data import generate

KEYS = {'rgb', 'gt', 'sec_gt', 'cls_gt', 'selector', 'labeled', 'info'}


# ---------------------------------------------------------------- TPS

@pytest.mark.parametrize('shape', [(40, 40), (37, 61), (70, 33)])
def test_tps_identity_at_scale_zero(shape):
    rng = np.random.default_rng(0)
    im = rng.integers(0, 256, shape + (3,), dtype=np.uint8)
    mask = rng.integers(0, 4, shape, dtype=np.uint8)
    w_im, w_mask = random_tps_warp(im, mask, scale=0.0, n_points=5, rng=rng)
    assert np.array_equal(w_im, im) and np.array_equal(w_mask, mask)


def test_tps_warps_and_keeps_mask_ids():
    rng = np.random.default_rng(1)
    mask = np.zeros((64, 80), np.uint8)
    mask[10:40, 10:35], mask[30:60, 40:75] = 3, 7
    im = np.stack([mask * 30] * 3, -1).astype(np.uint8)
    w_im, w_mask = random_tps_warp(im, mask, scale=0.1, n_points=5, rng=rng)
    assert w_im.shape == im.shape and w_im.dtype == im.dtype
    assert w_mask.shape == mask.shape and w_mask.dtype == mask.dtype
    assert set(np.unique(w_mask).tolist()) <= {0, 3, 7}
    assert not np.array_equal(w_mask, mask)                       # it really moved
    # image and mask moved together: the image's grey level tells the id
    agree = (np.abs(w_im[..., 0].astype(int) - w_mask.astype(int) * 30) < 45).mean()
    assert agree > 0.97
    # the same generator state gives the same warp
    a = random_tps_warp(im, mask, 0.1, 5, rng=np.random.default_rng(5))
    b = random_tps_warp(im, mask, 0.1, 5, rng=np.random.default_rng(5))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_tps_moved_points_carry_grid_content():
    # a dot at every interior grid point, each its own mask id (nearest sampling, so no
    # blended values); after the warp each dot sits where its control point moved to
    size, n = 121, 5
    im = np.zeros((size, size), np.uint8)
    src, dst = random_control_points(n, 0.06, np.random.default_rng(3))
    inner = [i for i, (x, y) in enumerate(src) if 0 < x < 1 and 0 < y < 1]
    for k, i in enumerate(inner):
        cx, cy = np.rint(src[i] * (size - 1)).astype(int)
        im[cy - 1:cy + 2, cx - 1:cx + 2] = k + 1
    w_im, w_mask = random_tps_warp(im * 20, im, scale=0.06, n_points=n,
                                   rng=np.random.default_rng(3))
    for k, i in enumerate(inner):
        ys, xs = np.nonzero(w_mask == k + 1)
        assert len(xs) > 0
        found = np.array([xs.mean(), ys.mean()])
        assert np.abs(found - dst[i] * (size - 1)).max() < 1.0, (i, found, dst[i] * (size - 1))
        assert (w_im[ys, xs] > 0).all()                           # the image moved with it
    assert not np.array_equal(w_mask, im)


def test_tps_backward_map_is_the_package_spline():
    # on a map no larger than the coarse grid, every pixel is the spline's own value
    src, dst = random_control_points(4, 0.1, np.random.default_rng(4))
    map_x, map_y = backward_map(MAP_GRID, MAP_GRID, src, dst)
    xs = np.linspace(0.0, 1.0, MAP_GRID)
    pts = np.stack(np.meshgrid(xs, xs), -1).reshape(-1, 2)
    want = ThinPlateSpline().fit(dst, src).transform(pts).reshape(MAP_GRID, MAP_GRID, 2)
    assert np.allclose(map_x, want[..., 0] * (MAP_GRID - 1), atol=1e-4)
    assert np.allclose(map_y, want[..., 1] * (MAP_GRID - 1), atol=1e-4)


# ---------------------------------------------------------------- dataset

@pytest.fixture(scope='module')
def static(tmp_path_factory):
    return generate(tmp_path_factory.mktemp('static'), 'static', videos=4, height=48, width=72,
                    seed=2)


def _check(item, c):
    assert set(item) == KEYS
    assert item['rgb'].shape == (3, 3, c, c) and item['rgb'].dtype == torch.float32
    assert item['gt'].shape == (3, 1, c, c) and item['gt'].dtype == torch.float32
    assert item['sec_gt'].shape == (3, 1, c, c) and item['sec_gt'].sum() == 0
    assert item['cls_gt'].shape == (3, c, c) and item['cls_gt'].dtype == torch.long
    assert set(item['cls_gt'].unique().tolist()) <= {0, 1}
    assert torch.equal(item['gt'][:, 0], item['cls_gt'].float())
    assert item['selector'].tolist() == [1.0, 0.0]
    assert item['labeled'].dtype == torch.bool and item['labeled'].tolist() == [True] * 3
    info = item['info']
    assert info['frames'] == [info['name']] * 3
    assert info['target_id'] == 1 and info['second_id'] == 0


def test_static_method0_recursive(static):
    reseed(0)
    ds = StaticTransformDataset(static['fss'], method=0, crop_size=56)
    assert len(ds) == 4
    assert {n.split(os.sep)[0] for n, _, _ in ds.items} == {'class_0', 'class_1'}
    for k in range(len(ds)):
        item = ds[k]
        _check(item, 56)
        assert item['gt'].sum() > 0
    # three different warps of one image
    assert not torch.equal(item['rgb'][0], item['rgb'][1])


def test_static_method1_flat_and_large_images(static):
    reseed(1)
    ds = StaticTransformDataset(static['DUTS-TR'], method=1, crop_size=40)
    assert len(ds) == 4 and all(os.sep not in n for n, _, _ in ds.items)
    for k in range(len(ds)):
        _check(ds[k], 40)


def test_static_grayscale_masks_and_alignment(tmp_path):
    """0/255 grey masks are binarised; the mask sits on the object's (white) pixels."""
    m = np.zeros((50, 70), np.uint8)
    m[10:40, 15:50] = 255
    Image.fromarray(np.repeat(m[..., None], 3, 2)).save(tmp_path / 'a.jpg', quality=95)
    Image.fromarray(m).save(tmp_path / 'a.png')
    reseed(2)
    ds = StaticTransformDataset(tmp_path, method=1, crop_size=48)
    for _ in range(5):
        item = ds[0]
        _check(item, 48)
        bright = inv_im_trans(item['rgb']).mean(1) > 0.75            # [3, C, C]
        agree = (bright == (item['gt'][:, 0] > 0)).float().mean()
        assert agree > 0.95, float(agree)


def test_static_deterministic_after_reseed(static):
    ds = StaticTransformDataset(static['ecssd'], method=1, crop_size=32)
    reseed(3)
    a = ds[1]
    reseed(3)
    b = ds[1]
    assert all(torch.equal(a[k], b[k]) for k in KEYS - {'info'})


def test_static_errors(tmp_path):
    with pytest.raises(UserError, match='no .jpg'):
        StaticTransformDataset(tmp_path, method=1)
    Image.new('RGB', (8, 8)).save(tmp_path / 'x.jpg')
    with pytest.raises(UserError, match='x.png'):
        StaticTransformDataset(tmp_path, method=1)
    write_mask(tmp_path / 'x.png', np.zeros((9, 8), np.uint8))
    with pytest.raises(UserError, match='differs'):
        StaticTransformDataset(tmp_path, method=1)[0]
