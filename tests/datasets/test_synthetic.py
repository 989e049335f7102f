"""The synthetic data generator: layouts, ids, YouTube conventions, determinism."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from util.errors import UserError
from util.image_io import read_frame, read_mask
from dataset.two_shot_split import load_split
from scripts.data.synthetic_data import generate
from scripts.data.synthetic_video import make_video

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SMALL = dict(videos=3, frames=6, height=48, width=64, objects=2, val_videos=1)


def _tree_bytes(root):
    """{relative path: bytes} of every file under root."""
    out = {}
    for d, _, files in os.walk(root):
        for f in files:
            p = os.path.join(d, f)
            with open(p, 'rb') as fh:
                out[os.path.relpath(p, root)] = fh.read()
    return out


def _ls(folder, ext):
    return sorted(f for f in os.listdir(folder) if f.endswith(ext))


def _centroid(mask):
    ys, xs = np.nonzero(mask)
    return np.array([xs.mean(), ys.mean()])


def test_make_video_shapes_motion_and_texture():
    frames, masks = make_video(np.random.default_rng(3), 8, 60, 80, 3)
    assert len(frames) == len(masks) == 8
    assert all(f.shape == (60, 80, 3) and f.dtype == np.uint8 for f in frames)
    assert all(m.shape == (60, 80) and m.dtype == np.uint8 for m in masks)
    assert set(np.unique(masks[0]).tolist()) == {0, 1, 2, 3}   # all objects on frame 0
    for k in (1, 2, 3):
        present = [t for t in range(8) if (masks[t] == k).sum() > 20]
        c = np.stack([_centroid(masks[t] == k) for t in present])
        steps = np.linalg.norm(np.diff(c, axis=0), axis=1)
        assert steps.max() < 0.25 * 80                          # smooth, no jumps
    assert any(not np.array_equal(masks[0] == k, masks[7] == k) for k in (1, 2, 3))
    # objects are textured, not flat colour
    obj = frames[0][masks[0] == 1].astype(float)
    assert obj.std(axis=0).max() > 8
    # same rng seed -> identical video; other seed -> different
    f2, m2 = make_video(np.random.default_rng(3), 8, 60, 80, 3)
    assert all(np.array_equal(a, b) for a, b in zip(frames, f2))
    assert all(np.array_equal(a, b) for a, b in zip(masks, m2))
    f3, _ = make_video(np.random.default_rng(4), 8, 60, 80, 3)
    assert not np.array_equal(frames[0], f3[0])


def test_make_video_ids_and_late_entry():
    _, masks = make_video(np.random.default_rng(0), 6, 48, 64, 2, ids=[2, 5], enter=[0, 3])
    assert set(np.unique(masks[0]).tolist()) <= {0, 2}
    assert (masks[0] == 2).any()
    assert all(not (m == 5).any() for m in masks[:3])
    assert (masks[3] == 5).sum() >= 8
    with pytest.raises(ValueError):
        make_video(np.random.default_rng(0), 2, 32, 32, 2, ids=[1, 1])


def test_davis_layout(tmp_path):
    p = generate(tmp_path, 'davis', seed=1, **SMALL)
    tv = tmp_path / 'DAVIS' / '2017' / 'trainval'
    assert p['trainval'] == str(tv)
    train = (tv / 'ImageSets' / '2017' / 'train.txt').read_text().split()
    val = (tv / 'ImageSets' / '2017' / 'val.txt').read_text().split()
    assert len(train) == 2 and len(val) == 1 and not set(train) & set(val)
    for v in train + val:
        jpgs = _ls(tv / 'JPEGImages' / '480p' / v, '.jpg')
        pngs = _ls(tv / 'Annotations' / '480p' / v, '.png')
        assert jpgs == [f'{t:05d}.jpg' for t in range(6)]
        assert pngs == [f'{t:05d}.png' for t in range(6)]
        assert read_frame(tv / 'JPEGImages' / '480p' / v / '00003.jpg').shape == (48, 64, 3)
        m0 = read_mask(tv / 'Annotations' / '480p' / v / '00000.png')
        assert m0.shape == (48, 64) and set(np.unique(m0).tolist()) == {0, 1, 2}
        for f in pngs:
            assert set(np.unique(read_mask(tv / 'Annotations' / '480p' / v / f))) <= {0, 1, 2}
    # test-dev: frames and only the first annotation
    td = tmp_path / 'DAVIS' / '2017' / 'test-dev'
    td_names = (td / 'ImageSets' / '2017' / 'test-dev.txt').read_text().split()
    assert len(td_names) == 2
    for v in td_names:
        assert len(_ls(td / 'JPEGImages' / '480p' / v, '.jpg')) == 6
        assert _ls(td / 'Annotations' / '480p' / v, '.png') == ['00000.png']
    # DAVIS 2016: val videos, object 1 only, same frames
    d16 = tmp_path / 'DAVIS' / '2016'
    assert (d16 / 'ImageSets' / '2016' / 'val.txt').read_text().split() == val
    for f in ('00000', '00004'):
        m17 = read_mask(tv / 'Annotations' / '480p' / val[0] / f'{f}.png')
        m16 = read_mask(d16 / 'Annotations' / '480p' / val[0] / f'{f}.png')
        assert np.array_equal(m16, (m17 == 1).astype(np.uint8))
        assert (d16 / 'JPEGImages' / '480p' / val[0] / f'{f}.jpg').read_bytes() == \
            (tv / 'JPEGImages' / '480p' / val[0] / f'{f}.jpg').read_bytes()
    # two-shot split of the train videos + the sparse folder holding exactly those frames
    split = load_split(p['split'])
    assert sorted(split) == sorted(train)
    for v, names in split.items():
        assert len(names) == 2
        pngs = [n.replace('.jpg', '.png') for n in names]
        assert _ls(os.path.join(p['sparse'], v), '.png') == pngs
        for png in pngs:
            assert (tv / 'Annotations' / '480p' / v / png).read_bytes() == \
                open(os.path.join(p['sparse'], v, png), 'rb').read()


def test_youtube_layout(tmp_path):
    p = generate(tmp_path, 'youtube', seed=2, videos=2, frames=6, height=48, width=64,
                 objects=2, val_videos=2)
    yt = tmp_path / 'YouTube'
    names = [f'{5 * t:05d}' for t in range(6)]
    late_seen, skip_seen = False, False
    for v in sorted(os.listdir(yt / 'train_480p' / 'JPEGImages')):
        assert _ls(yt / 'train_480p' / 'JPEGImages' / v, '.jpg') == [n + '.jpg' for n in names]
        assert _ls(yt / 'train_480p' / 'Annotations' / v, '.png') == [n + '.png' for n in names]
        assert _tree_bytes(yt / 'train' / 'Annotations' / v) == \
            _tree_bytes(yt / 'train_480p' / 'Annotations' / v)
        ids = set()
        for n in names:
            ids |= set(np.unique(read_mask(yt / 'train_480p' / 'Annotations' / v / f'{n}.png')))
        ids.discard(0)
        skip_seen |= sorted(ids) != list(range(1, len(ids) + 1))
    assert skip_seen
    meta = json.loads((yt / 'valid' / 'meta.json').read_text())['videos']
    assert sorted(meta) == sorted(os.listdir(yt / 'valid' / 'JPEGImages'))
    assert len(meta) == 2
    for v, info in meta.items():
        jpgs = _ls(yt / 'valid' / 'JPEGImages' / v, '.jpg')
        assert jpgs == [n + '.jpg' for n in names]
        full = {n: read_mask(yt / 'valid_full' / 'Annotations' / v / f'{n}.png') for n in names}
        ids = sorted(int(k) for k in info['objects'])
        assert ids != list(range(1, len(ids) + 1))              # ids skip numbers
        present_ids = set().union(*[set(np.unique(m).tolist()) for m in full.values()]) - {0}
        assert present_ids == set(ids)
        first = {}
        for oid in ids:
            frames = info['objects'][str(oid)]['frames']
            assert frames == [n for n in names if (full[n] == oid).any()]   # meta = masks
            first[oid] = frames[0]
            late_seen |= frames[0] != '00000'
        # valid/Annotations: only first-appearance frames, each with only its new objects
        assert _ls(yt / 'valid' / 'Annotations' / v, '.png') == \
            sorted({f + '.png' for f in first.values()})
        for f in set(first.values()):
            m = read_mask(yt / 'valid' / 'Annotations' / v / f'{f}.png')
            new = [o for o in ids if first[o] == f]
            assert set(np.unique(m).tolist()) - {0} == set(new)
            assert np.array_equal(m, np.where(np.isin(full[f], new), full[f], 0))
        # all frames: step-1 numbering, the every-5th ones identical to valid/JPEGImages
        allf = yt / 'all_frames' / 'valid_all_frames' / 'JPEGImages' / v
        assert _ls(allf, '.jpg') == [f'{t:05d}.jpg' for t in range(26)]
        for n in names:
            assert (allf / f'{n}.jpg').read_bytes() == \
                (yt / 'valid' / 'JPEGImages' / v / f'{n}.jpg').read_bytes()
    assert late_seen
    split = load_split(p['split'])
    assert sorted(split) == sorted(os.listdir(yt / 'train_480p' / 'Annotations'))
    for v, fr in split.items():
        assert _ls(os.path.join(p['sparse'], v), '.png') == [f.replace('.jpg', '.png') for f in fr]


def test_static_and_bl30k_layouts(tmp_path):
    p = generate(tmp_path, 'static', seed=0, videos=3, height=40, width=56)
    for name in ('fss', 'DUTS-TR', 'DUTS-TE', 'ecssd', 'BIG_small', 'HRSOD_small'):
        folder = tmp_path / 'static' / name
        assert p[name] == str(folder)
        if name == 'fss':
            classes = sorted(os.listdir(folder))
            assert len(classes) == 2 and all((folder / c).is_dir() for c in classes)
            pairs = [(folder / c, f[:-4]) for c in classes for f in _ls(folder / c, '.jpg')]
        else:
            pairs = [(folder, f[:-4]) for f in _ls(folder, '.jpg')]
        assert len(pairs) == 3
        for d, stem in pairs:
            assert read_frame(d / f'{stem}.jpg').shape == (40, 56, 3)
            m = read_mask(d / f'{stem}.png')
            assert set(np.unique(m).tolist()) == {0, 1}
    generate(tmp_path, 'bl30k', seed=0, videos=2, frames=4, height=40, width=56, objects=3)
    bl = tmp_path / 'BL30K'
    vids = sorted(os.listdir(bl / 'JPEGImages'))
    assert len(vids) == 2 and sorted(os.listdir(bl / 'Annotations')) == vids
    for v in vids:
        assert _ls(bl / 'JPEGImages' / v, '.jpg') == [f'{t:05d}.jpg' for t in range(4)]
        m = read_mask(bl / 'Annotations' / v / '00000.png')
        assert set(np.unique(m).tolist()) == {0, 1, 2, 3}


@pytest.mark.parametrize('layout', ['davis', 'youtube'])
def test_same_seed_byte_identical_other_seed_differs(tmp_path, layout):
    generate(tmp_path / 'a', layout, seed=7, **SMALL)
    generate(tmp_path / 'b', layout, seed=7, **SMALL)
    generate(tmp_path / 'c', layout, seed=8, **SMALL)
    a, b, c = (_tree_bytes(tmp_path / x) for x in 'abc')
    assert len(a) > 50 and a == b
    jpgs = sorted(k for k in a if k.endswith('.jpg'))
    assert jpgs == sorted(k for k in c if k.endswith('.jpg'))   # same file names
    assert sum(a[k] != c[k] for k in jpgs) > 0.9 * len(jpgs)    # other content


def test_rerun_replaces_own_tree_and_refuses_foreign(tmp_path):
    generate(tmp_path, 'bl30k', videos=3, frames=2, height=32, width=32, objects=1)
    generate(tmp_path, 'bl30k', videos=1, frames=2, height=32, width=32, objects=1)
    assert len(os.listdir(tmp_path / 'BL30K' / 'JPEGImages')) == 1     # no stale videos
    foreign = tmp_path / 'other'
    (foreign / 'BL30K').mkdir(parents=True)
    (foreign / 'BL30K' / 'keep.txt').write_text('real data')
    with pytest.raises(UserError, match='BL30K'):
        generate(foreign, 'bl30k', videos=1, frames=2, height=32, width=32, objects=1)
    assert (foreign / 'BL30K' / 'keep.txt').read_text() == 'real data'


def test_cli(tmp_path):
    r = subprocess.run([sys.executable, '-m', 'scripts.data.synthetic', '--out', str(tmp_path),
                        '--layout', 'bl30k', '--videos', '1', '--frames', '3', '--height', '32',
                        '--width', '40', '--objects', '2', '--seed', '5'],
                       cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    m = read_mask(tmp_path / 'BL30K' / 'Annotations' / 'bl30k_000' / '00002.png')
    assert m.shape == (32, 40)
    r = subprocess.run([sys.executable, '-m', 'scripts.data.synthetic', '--out', str(tmp_path),
                        '--layout', 'davis', '--videos', '1'],
                       cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.startswith('error:') and 'Traceback' not in r.stderr
