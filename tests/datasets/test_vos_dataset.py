"""VOSDataset: triplet sampling in the three modes, masks read, item layout, determinism."""
import os
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

import dataset.vos_dataset as vd
from dataset.range_transform import inv_im_trans
from dataset.reseed import WorkerInit, reseed
from dataset.vos_dataset import VOSDataset, ordinary_triplet, semi_pair, semi_triplet
from util.errors import UserError
from util.image_io import write_mask
from scripts.data.synthetic_data import generate

C = 48                    # crop size used throughout (small: fast)
N_FRAMES = 14
# our own split: two labels far apart, two labels close together, one label only
SPLIT = {'davis_000': ['00002.jpg', '00009.jpg'],
         'davis_001': ['00011.jpg', '00005.jpg'],
         'davis_002': ['00006.jpg']}
KEYS = {'rgb', 'gt', 'sec_gt', 'cls_gt', 'selector', 'labeled', 'info'}


@pytest.fixture(scope='module')
def tree(tmp_path_factory):
    out = tmp_path_factory.mktemp('vos')
    p = generate(out, 'davis', videos=3, frames=N_FRAMES, height=40, width=56, objects=2,
                 seed=3, val_videos=1)
    im_root = os.path.join(p['trainval'], 'JPEGImages', '480p')
    gt_root = os.path.join(p['trainval'], 'Annotations', '480p')
    # sparse tree: only the labeled PNGs exist
    sparse = os.path.join(str(out), 'sparse')
    for v, names in SPLIT.items():
        os.makedirs(os.path.join(sparse, v))
        for n in names:
            png = n.replace('.jpg', '.png')
            shutil.copy(os.path.join(gt_root, v, png), os.path.join(sparse, v, png))
    # pseudo-label bank: frames 3..11 of each video, plus writer leftovers to be skipped
    bank = os.path.join(str(out), 'bank')
    for v in SPLIT:
        os.makedirs(os.path.join(bank, v))
        for t in range(3, 12):
            shutil.copy(os.path.join(gt_root, v, f'{t:05d}.png'), os.path.join(bank, v))
        shutil.copy(os.path.join(gt_root, v, '00000.png'), os.path.join(bank, v, '.tmp_x.png'))
    os.makedirs(os.path.join(bank, '.tmp_video'))
    shutil.copy(os.path.join(gt_root, 'davis_000', '00000.png'),
                os.path.join(bank, '.tmp_video', '00000.png'))
    return {'im': im_root, 'gt': gt_root, 'sparse': sparse, 'bank': bank}


@pytest.fixture
def spy(monkeypatch):
    """Record every mask path the dataset reads."""
    seen = []
    real = vd.read_mask

    def read_mask(path, *a, **k):
        seen.append(str(path))
        return real(path, *a, **k)
    monkeypatch.setattr(vd, 'read_mask', read_mask)
    return seen


def _idx(names):
    return [int(os.path.splitext(n)[0]) for n in names]


def _check_item(item, c=C):
    assert set(item) == KEYS
    assert item['rgb'].shape == (3, 3, c, c) and item['rgb'].dtype == torch.float32
    assert item['gt'].shape == (3, 1, c, c) and item['gt'].dtype == torch.float32
    assert item['sec_gt'].shape == (3, 1, c, c) and item['sec_gt'].dtype == torch.float32
    assert item['cls_gt'].shape == (3, c, c) and item['cls_gt'].dtype == torch.long
    assert item['selector'].shape == (2,) and item['selector'].dtype == torch.float32
    assert item['labeled'].shape == (3,) and item['labeled'].dtype == torch.bool
    info = item['info']
    assert set(info) >= {'name', 'frames', 'target_id', 'second_id'}
    assert len(info['frames']) == 3
    cls = item['cls_gt']
    assert set(cls.unique().tolist()) <= {-1, 0, 1, 2}
    for t in range(3):
        if item['labeled'][t] or not (cls[t] == -1).all():
            assert (cls[t] >= 0).all()
            assert torch.equal(item['gt'][t, 0], (cls[t] == 1).float())
            assert torch.equal(item['sec_gt'][t, 0], (cls[t] == 2).float())
    # selector consistent with the second object
    has_second = info['second_id'] != 0
    assert item['selector'].tolist() == [1.0, 1.0 if has_second else 0.0]
    if not has_second:
        assert item['sec_gt'].sum() == 0 and not (cls == 2).any()
    assert info['target_id'] != info['second_id'] or info['target_id'] == 0


def test_full_supervision_items(tree):
    reseed(0)
    ds = VOSDataset(tree['im'], tree['gt'], max_jump=2, crop_size=C)
    assert len(ds) == 3 and ds.mode == 'full'
    seen_second = False
    for k in range(12):
        item = ds[k % len(ds)]
        _check_item(item)
        idx = _idx(item['info']['frames'])
        d = np.diff(idx)
        assert ((d >= 0).all() or (d <= 0).all()) and np.abs(d).max() <= 3
        assert item['labeled'].all() and (item['cls_gt'] >= 0).all()
        assert item['info']['target_id'] in (1, 2)
        assert (item['cls_gt'][0] == 1).any()       # the target is visible in frame 0
        seen_second |= item['info']['second_id'] != 0
    assert seen_second


def test_max_jump_is_settable(tree):
    reseed(1)
    ds = VOSDataset(tree['im'], tree['gt'], max_jump=5, crop_size=C)
    ds.max_jump = 1
    for k in range(6):
        assert np.abs(np.diff(_idx(ds[k % 3]['info']['frames']))).max() <= 2


def test_ordinary_triplet_rule():
    """STCN's clipping rule, reversed in time about half the time."""
    reseed(2)
    for n in (1, 2, 3, 4, 9, 30):
        for jump in (1, 3, 12, 40):
            j = min(n, jump)
            for _ in range(60):
                i = ordinary_triplet(n, jump)
                assert all(0 <= k < n for k in i)
                s, f1, f2 = i if i[0] <= i[2] else i[::-1]          # undo a reversal
                assert s <= n - j and s <= f1 <= f2
                assert f1 - s <= j + 1 and f2 - f1 <= j + 1
                assert f1 <= min(n - j, n - 1) and f2 <= min(n - j // 2, n - 1)
                assert f1 - s >= 1 or f1 == min(n - j, n - 1)          # 0 only when clipped
                assert f2 - f1 >= 1 or f2 == min(n - j // 2, n - 1)


def test_ordinary_triplet_reversal_rate():
    reseed(3)
    draws = [ordinary_triplet(30, 5) for _ in range(4000)]
    backward = sum(i[0] > i[2] for i in draws) / len(draws)
    assert all(i[0] != i[2] for i in draws)
    assert 0.47 < backward < 0.53, backward                     # p = 0.5 (4000 draws: sd 0.008)
    starts = {min(i) for i in draws}
    assert starts == set(range(26))                             # start = randint(n - j + 1)


@pytest.mark.parametrize('jump,orders', [(2, {'aab': 0.5, 'baa': 0.5}),
                                         (5, {'aab': 0.5, 'baa': 0.5}),
                                         (1, {'abb': 0.25, 'bbb': 0.5, 'bba': 0.25})])
def test_warm_up_orders_of_two_labels(jump, orders):
    """The rule over the list [a, b] of a video's two labeled frames."""
    reseed(4)
    draws = [''.join('ab'[k] for k in ordinary_triplet(2, jump)) for _ in range(4000)]
    freq = {o: draws.count(o) / len(draws) for o in set(draws)}
    assert set(freq) == set(orders), freq
    for o, p in orders.items():
        assert abs(freq[o] - p) < 0.03, freq


def test_labeled_only_two_shot(tree, spy):
    reseed(3)
    ds = VOSDataset(tree['im'], tree['sparse'], max_jump=3, two_shot=SPLIT, crop_size=C)
    assert ds.mode == 'two_shot' and sorted(ds.videos) == sorted(SPLIT)
    for k in range(18):
        item = ds[k % 3]
        _check_item(item)
        v, frames = item['info']['name'], item['info']['frames']
        assert set(frames) == set(SPLIT[v])          # both labeled frames, nothing else
        assert item['labeled'].all() and (item['cls_gt'] >= 0).all()
    assert spy and all(os.path.basename(p).replace('.png', '.jpg')
                       in SPLIT[os.path.basename(os.path.dirname(p))] for p in spy)


@pytest.mark.parametrize('jump,orders', [(2, {'aab', 'baa'}), (1, {'abb', 'bbb', 'bba'})])
def test_warm_up_items_follow_the_rule(tree, jump, orders):
    """Warm-up items of a video labeled at frames 2 (a) and 9 (b); one label only: [6, 6, 6]."""
    reseed(5)
    ds = VOSDataset(tree['im'], tree['sparse'], max_jump=jump, two_shot=SPLIT, crop_size=C,
                    subset=['davis_000', 'davis_002'])
    seen = set()
    for k in range(40):
        item = ds[k % 2]
        frames = item['info']['frames']
        if item['info']['name'] == 'davis_002':
            assert frames == ['00006.jpg'] * 3
            continue
        seen.add(''.join({'00002.jpg': 'a', '00009.jpg': 'b'}[f] for f in frames))
        assert item['labeled'].all()
    assert seen == orders


@pytest.mark.parametrize('labels,reverse_p,end', [(['00000.jpg', '00009.jpg'], 1.0, 0),
                                                  (['00004.jpg', '00013.jpg'], 0.0, 13)])
@pytest.mark.parametrize('force_both_p', [0.0, 1.0])
def test_semi_triplets_repeat_the_frame_at_the_video_end(tree, labels, reverse_p, end,
                                                         force_both_p):
    """A semi triplet that starts at the video's end in its direction is [s, s, s] (it does
    not turn round), with or without forcing both labels in."""
    reseed(6)
    ds = VOSDataset(tree['im'], tree['gt'], max_jump=2, two_shot={'davis_000': labels},
                    semi=True, crop_size=C, reverse_p=reverse_p, force_both_p=force_both_p)
    at_end = 0
    for _ in range(40):
        item = ds[0]
        idx = _idx(item['info']['frames'])
        if idx[0] == end:
            assert idx == [end] * 3 and item['labeled'].all()
            at_end += 1
        else:
            d = np.diff(idx)
            assert (d <= 0).all() if reverse_p else (d >= 0).all()
    assert 10 <= at_end <= 30                      # the start label is drawn with p = 0.5


def test_semi_triplet_clips_and_forces_in_direction_order():
    reseed(7)
    n, got = 14, set()
    for backward in (False, True):
        pair = [9, 2] if backward else [2, 9]
        for _ in range(300):
            i = semi_triplet(n, pair, backward, 3, 1.0)
            assert i[0] in pair and {2, 9} <= set(i)
            along = [-k for k in i] if backward else i
            assert along == sorted(along)
            got.add(tuple(i))
        assert semi_triplet(n, [13], False, 3, 1.0) == [13, 13, 13]
        assert semi_triplet(n, [0], True, 3, 1.0) == [0, 0, 0]
    assert (2, 9, 10) in got and (9, 10, 11) not in got and (9, 2, 1) in got
    assert semi_pair([9, 2], 1.0) == ([9, 2], True) and semi_pair([9, 2], 0.0) == ([2, 9], False)


def _semi(tree, **kw):
    return VOSDataset(tree['im'], tree['sparse'], max_jump=2, two_shot=SPLIT, semi=True,
                      crop_size=C, **kw)


def test_semi_triplets_start_labeled_flags_and_gaps(tree):
    reseed(4)
    ds = _semi(tree, force_both_p=0.0)
    directions = set()
    for k in range(30):
        item = ds[k % 3]
        _check_item(item)
        v, frames = item['info']['name'], item['info']['frames']
        assert frames[0] in SPLIT[v]                                # starts at a label
        assert item['labeled'].tolist() == [f in SPLIT[v] for f in frames]
        idx = _idx(frames)
        d = np.diff(idx)
        assert (d >= 0).all() or (d <= 0).all()                     # one time direction
        assert np.abs(d).max() <= 3                                 # 1..max_jump+1 (clipped)
        directions.add(int(np.sign(idx[2] - idx[0])))
        for t in range(3):
            if item['labeled'][t]:
                assert (item['cls_gt'][t] >= 0).all()
            else:                                                   # ignored, empty targets
                assert (item['cls_gt'][t] == -1).all()
                assert item['gt'][t].sum() == 0 and item['sec_gt'][t].sum() == 0
    assert directions >= {1, -1}
    assert not ds[0]['labeled'].all() or not ds[1]['labeled'].all()


@pytest.mark.parametrize('reverse_p', [0.0, 1.0])
def test_semi_direction(tree, reverse_p):
    reseed(5)
    ds = _semi(tree, force_both_p=0.0, reverse_p=reverse_p)
    for k in range(9):
        d = np.diff(_idx(ds[k % 3]['info']['frames']))
        assert (d >= 0).all() if reverse_p == 0 else (d <= 0).all()


def test_semi_force_both(tree):
    reseed(6)
    ds = _semi(tree, force_both_p=1.0)
    for k in range(24):
        item = ds[k % 3]
        v, frames = item['info']['name'], item['info']['frames']
        assert frames[0] in SPLIT[v] and item['labeled'][0]
        assert set(SPLIT[v]) <= set(frames)                         # both labeled frames
        d = np.diff(_idx(frames))
        assert (d >= 0).all() or (d <= 0).all()                     # in time order
        assert item['labeled'].tolist() == [f in SPLIT[v] for f in frames]


def test_two_shot_never_opens_unlabeled_masks(tree, spy):
    # the sparse tree has no unlabeled PNGs at all; sampling must still work
    assert all(len(os.listdir(os.path.join(tree['sparse'], v))) == len(SPLIT[v]) for v in SPLIT)
    reseed(7)
    ds = _semi(tree)
    for k in range(30):
        ds[k % 3]
    ds.semi = False                                   # warm-up mode on the same object
    for k in range(6):
        ds[k % 3]
    assert len(spy) > 30
    for p in spy:
        v, f = os.path.basename(os.path.dirname(p)), os.path.basename(p)
        assert f.replace('.png', '.jpg') in SPLIT[v], p


def test_two_shot_missing_label_is_a_clear_error(tree):
    with pytest.raises(UserError, match='00004.png'):
        VOSDataset(tree['im'], tree['sparse'], 2, two_shot={'davis_000': ['00004.jpg']})
    with pytest.raises(UserError, match='not found'):
        VOSDataset(os.path.join(tree['im'], 'nope'), tree['gt'], 2)


def test_phase2_bank_frames_only(tree, spy):
    reseed(8)
    ds = VOSDataset(tree['im'], None, max_jump=1, pseudo_root=tree['bank'],
                    labeled_frames=SPLIT, crop_size=C)
    assert ds.mode == 'phase2' and sorted(ds.videos) == sorted(SPLIT)   # '.tmp_video' skipped
    starts = set()
    for k in range(24):
        item = ds[k % 3]
        _check_item(item)
        v, frames = item['info']['name'], item['info']['frames']
        idx = _idx(frames)
        assert all(3 <= i <= 11 for i in idx)                       # bank frames only
        d = np.diff(idx)
        assert ((d >= 0).all() or (d <= 0).all()) and np.abs(d).max() <= 2
        assert item['labeled'].tolist() == [f in SPLIT[v] for f in frames]
        assert (item['cls_gt'] >= 0).all()
        starts.add(frames[0] in SPLIT[v])
    assert starts == {True, False}                                  # no labeled-first rule
    assert all(p.startswith(tree['bank']) and '.tmp' not in p for p in spy)


def test_deterministic_after_reseed(tree):
    ds = _semi(tree)

    def flat(item):
        return [item[k] for k in sorted(KEYS - {'info'})], item['info']
    reseed(11)
    a = [flat(ds[k]) for k in range(3)]
    reseed(11)
    b = [flat(ds[k]) for k in range(3)]
    for (ta, ia), (tb, ib) in zip(a, b):
        assert ia == ib and all(torch.equal(x, y) for x, y in zip(ta, tb))
    reseed(12)
    c = [flat(ds[k]) for k in range(3)]
    assert any(not torch.equal(x[0][2], y[0][2]) for x, y in zip(a, c))   # rgb differs


def test_worker_init_differs_by_rank_and_worker():
    def draw(rank, worker):
        torch.manual_seed(99)                 # what DataLoader gives every rank alike
        WorkerInit(14159265, rank)(worker)
        return (np.random.rand(), float(torch.rand(1)))
    assert draw(0, 0) == draw(0, 0)
    assert draw(0, 0) != draw(1, 0) and draw(0, 0) != draw(0, 1)


def test_image_and_mask_share_the_warp(tmp_path):
    """A white object on black: after augmentation the mask must sit on the bright pixels."""
    h, w = 60, 80
    for t in range(5):
        m = np.zeros((h, w), np.uint8)
        m[15 + t:45 + t, 20 + 2 * t:55 + 2 * t] = 1
        os.makedirs(tmp_path / 'im' / 'v', exist_ok=True)
        Image.fromarray(np.repeat(m[..., None] * 255, 3, 2)).save(tmp_path / 'im' / 'v' / f'{t:05d}.png')
        write_mask(tmp_path / 'gt' / 'v' / f'{t:05d}.png', m)
    reseed(13)
    ds = VOSDataset(tmp_path / 'im', tmp_path / 'gt', max_jump=1, crop_size=64)
    for _ in range(8):
        item = ds[0]
        rgb = inv_im_trans(item['rgb']).mean(1)              # [3, C, C] in ~[0, 1]
        bright = rgb > 0.75                                   # object; bg 0, affine fill ~0.45
        agree = (bright == (item['gt'][:, 0] > 0)).float().mean()
        assert agree > 0.95, float(agree)
        assert item['selector'].tolist() == [1.0, 0.0]


def test_dataloader_batches_and_picklable_worker_init(tree):
    import pickle
    from torch.utils.data import ConcatDataset, DataLoader
    fn = pickle.loads(pickle.dumps(WorkerInit(14159265, 1)))   # spawn-safe
    assert fn.rank == 1
    ds = ConcatDataset([_semi(tree)] * 2)
    reseed(14)
    batch = next(iter(DataLoader(ds, batch_size=4, shuffle=True, worker_init_fn=fn)))
    assert batch['rgb'].shape == (4, 3, 3, C, C) and batch['cls_gt'].shape == (4, 3, C, C)
    assert batch['selector'].shape == (4, 2) and batch['labeled'].shape == (4, 3)
    assert len(batch['info']['name']) == 4 and batch['info']['target_id'].shape == (4,)
