"""STCNModel on hand-made batches (CPU, 32x32 crops): teacher, pseudo labels, the loss's
targets, and the phase-2 bank write-back (phase2.bank_writer)."""
import os

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import C, TargetRecorder, make_batch, make_model, step
from model.losses import IGNORE, bank_trigger, pseudo_labels
from phase2.bank_writer import sample_info
from util.image_io import read_mask, write_mask


def test_teacher_not_run_in_warmup_and_ema():
    model = make_model('--semi', '--use_teacher', '--end_warm', '2', '--ema_alpha', '0.995')
    batch = make_batch(b=1)
    assert model.teacher is None
    step(model, batch, 0)
    # teacher = copy of the student after the first optimiser step
    assert model.teacher is not None
    name = 'decoder.pred.weight'
    s0 = dict(model.net.named_parameters())[name].detach().clone()
    assert torch.equal(dict(model.teacher.named_parameters())[name], s0)
    assert model.teacher_forward_calls == 0
    step(model, batch, 1)                       # still warm-up: unlabeled frame 1 ignored
    assert model.teacher_forward_calls == 0
    s1 = dict(model.net.named_parameters())[name].detach()
    assert not torch.equal(s1, s0)
    # EMA after it 1: a = min(1 - 1/2, 0.995) = 0.5
    assert torch.allclose(dict(model.teacher.named_parameters())[name], 0.5 * s0 + 0.5 * s1,
                          atol=1e-7)
    step(model, batch, 2)                       # it == end_warm: still warm-up
    assert model.teacher_forward_calls == 0
    step(model, make_batch(labeled=(True, True, True), b=1), 3)   # after warm-up, labeled
    assert model.teacher_forward_calls == 0
    stats = step(model, batch, 4)                             # after warm-up, unlabeled
    assert model.teacher_forward_calls == 1
    assert 0.0 <= stats['pseudo/coverage'] <= 1.0
    assert model.teacher.training is False and model.net.training is False


def _fixed_reference(model, b):
    """Patch the pseudo-label source with known logits; returns them (frame 1, frame 2)."""
    g = torch.Generator().manual_seed(5)
    ref = (torch.randn(b, 3, C, C, generator=g) * 4, torch.randn(b, 3, C, C, generator=g) * 4)
    model._reference_logits = lambda *args: ref
    return ref


def test_semi_targets_before_and_after_warmup():
    b = 2
    model = make_model('--semi', '--end_warm', '1', '--semi_thres_upper', '0.7')
    rec = model.losses.ce = TargetRecorder(model.losses.ce)
    ref = _fixed_reference(model, b)
    batch = make_batch(labeled=(True, False, True), b=b)
    for it in (0, 1):                                       # it <= end_warm: warm-up
        step(model, batch, it)
        t1, t2 = rec.frame_targets(b)
        assert torch.all(t1 == IGNORE)                      # unlabeled, warm-up: ignored
        assert torch.equal(t2, batch['cls_gt'][:, 2])       # labeled frame unchanged
    step(model, batch, 2)
    t1, t2 = rec.frame_targets(b)
    prob = torch.softmax(ref[0], 1)
    want = pseudo_labels(prob[:, 0], prob[:, 1], prob[:, 2], 0.7, torch.tensor([True] * b))
    assert torch.equal(t1, want)                            # unlabeled <- pseudo labels
    assert (t1 == IGNORE).any() and (t1 != IGNORE).any()
    assert torch.equal(t2, batch['cls_gt'][:, 2])


@pytest.mark.parametrize('keep_true', [False, True])
def test_phase2_refresh_touches_true_labels_unless_kept(keep_true):
    """Frames 1-2 of every sample are refreshed where confident, the truly labeled frame 2
    too; with --phase2_keep_true_labels that frame keeps its label."""
    b = 2
    model = make_model('--phase2_train', '0', '--phase2_start_update', '1',
                       '--phase2_thres', '0.8',
                       *(['--phase2_keep_true_labels'] if keep_true else []))
    rec = model.losses.ce = TargetRecorder(model.losses.ce)
    ref = _fixed_reference(model, b)
    batch = make_batch(labeled=(True, False, True), b=b)
    bank_cls = batch['cls_gt'].clone()
    bank_cls[:, 1] = torch.where(bank_cls[:, 1] == IGNORE, 0, bank_cls[:, 1])
    bank_cls[:, 1, 4:14, 4:14] = 1                 # the bank's label of frame 1
    batch['cls_gt'] = bank_cls
    step(model, batch, 0)                        # before phase2_start_update: bank labels
    t1, _ = rec.frame_targets(b)
    assert torch.equal(t1, bank_cls[:, 1])
    step(model, batch, 1)
    t1, t2 = rec.frame_targets(b)
    refreshed = []
    for f in (1, 2):
        prob = torch.softmax(ref[f - 1], 1)
        pl = pseudo_labels(prob[:, 0], prob[:, 1], prob[:, 2], 0.8, torch.tensor([True] * b))
        refreshed.append(torch.where(pl == IGNORE, bank_cls[:, f], pl))
    assert torch.equal(t1, refreshed[0])
    assert not torch.equal(refreshed[1], bank_cls[:, 2])
    assert torch.equal(t2, bank_cls[:, 2] if keep_true else refreshed[1])


def test_two_class_loss_for_samples_without_second_object():
    model = make_model()
    rec = model.losses.ce = TargetRecorder(model.losses.ce)
    shapes = []
    orig = rec.loss_fn

    def spy(logits, target, it):
        shapes.append(logits.shape[1])
        return orig(logits, target, it)
    rec.loss_fn = spy
    batch = make_batch(labeled=(True, True, True), second=False)
    batch['selector'][0, 1] = 1.0                  # sample 0 claims a second object
    step(model, batch, 0)
    assert shapes == [3, 2, 3, 2]


# ----------------------------------------------------------------------------- bank update

def _bank(tmp_path):
    """A 3-frame video: frames, a true-label folder and a bank; ids 1 (target), 2, 3."""
    im_root, gt_root, bank_root = (tmp_path / d for d in ('im', 'gt', 'bank'))
    h, w = 40, 56                                  # not multiples of 16: padding path
    rng = np.random.default_rng(0)
    for t in range(3):
        img = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
        os.makedirs(im_root / 'vid', exist_ok=True)
        Image.fromarray(img).save(im_root / 'vid' / f'{t:05d}.jpg')
        m = np.zeros((h, w), np.uint8)
        m[5:20, 5:25] = 1
        m[25:35, 30:50] = 2
        m[0:4, 40:56] = 3                          # an object outside the triplet's pair
        write_mask(bank_root / 'vid' / f'{t:05d}.png', m)
        write_mask(gt_root / 'vid' / f'{t:05d}.png', m)
    return {'vid': {'im_root': str(im_root), 'gt_root': str(gt_root),
                    'bank_root': str(bank_root), 'labeled': {'00000'}}}


def test_bank_rewrite_forced_change(tmp_path):
    bank = _bank(tmp_path)
    model = make_model('--phase2_train', '0', '--phase2_thres', '0.0', bank=bank)
    root = bank['vid']['bank_root']
    folder = os.path.join(root, 'vid')
    before = {f: read_mask(os.path.join(folder, f)) for f in os.listdir(folder)}
    # threshold 0: every editable pixel is confidently background (bg is assigned last)
    n = model.bank_writer.rewrite_frames(model.label_forward, 'vid', ['00000.jpg', '00001.jpg', '00002.jpg'], 1, 2, (1,))
    assert n == 1
    img = Image.open(os.path.join(root, 'vid', '00001.png'))
    assert img.mode == 'P'
    new = np.asarray(img)
    old = before['00001.png']
    assert np.array_equal(new[old == 3], old[old == 3])       # other object kept
    assert not np.isin(new, [1, 2]).any()
    assert np.array_equal(read_mask(os.path.join(root, 'vid', '00002.png')), before['00002.png'])
    assert np.array_equal(read_mask(os.path.join(root, 'vid', '00000.png')), before['00000.png'])
    assert not [f for f in os.listdir(os.path.join(root, 'vid')) if f.startswith('.tmp')]


def test_bank_rewrite_confident_prediction_valid_png(tmp_path):
    bank = _bank(tmp_path)
    model = make_model('--phase2_train', '0', '--phase2_thres', '0.5', bank=bank)
    root = os.path.join(bank['vid']['bank_root'], 'vid')
    old = read_mask(os.path.join(root, '00002.png'))
    model.bank_writer.rewrite_frames(model.label_forward, 'vid',
                                     ['00000.jpg', '00001.jpg', '00002.jpg'], 1, 2, (2,))
    img = Image.open(os.path.join(root, '00002.png'))
    assert img.mode == 'P' and img.size == (56, 40)
    new = np.asarray(img)
    assert set(np.unique(new)) <= {0, 1, 2, 3}
    assert np.array_equal(new[old == 3], old[old == 3])


def _region(b=2, box=(4, 14, 4, 14), value=1):
    m = torch.zeros(b, C, C, dtype=torch.long)
    m[:, box[0]:box[1], box[2]:box[3]] = value
    return m


def test_bank_trigger_grown_vs_only_shrunk():
    """A rewrite is asked for when the target region changed size and the confident target
    is not inside the old region; a region that only shrank never asks."""
    thres, hs = 0.99, torch.tensor([True, False])
    old = _region()                                       # target 4:14 x 4:14
    conf_big = _region(box=(2, 16, 2, 16)).float()        # confident target beyond it
    conf_small = _region(box=(6, 12, 6, 12)).float()      # confident target inside it
    no_sec = torch.zeros(2, C, C)
    grown = torch.where(conf_big > 0, 1, old)
    assert bank_trigger(old, grown, conf_big, no_sec, thres, hs).tolist() == [True, True]
    shrunk = torch.where(conf_small > 0, 1, old)
    shrunk[:, 4:6] = 0                                    # lost pixels (confident background)
    assert bank_trigger(old, shrunk, conf_small, no_sec, thres, hs).tolist() == [False, False]
    assert bank_trigger(old, old, conf_small, no_sec, thres, hs).tolist() == [False, False]
    # grew by as many pixels as it lost: same size, no request (the original compares sizes)
    moved = old.clone()
    moved[:, 4:14, 4] = 0
    moved[:, 4:14, 14] = 1
    conf_moved = (moved == 1).float()
    assert bank_trigger(old, moved, conf_moved, no_sec, thres, hs).tolist() == [False, False]
    # the old region is taken after the second object's confident pixels: a confident second
    # object over part of it shrinks the old region first, then the target regrows there
    sec = _region(box=(4, 6, 4, 14)).float()
    regrown = old.clone()
    assert bank_trigger(old, regrown, (old == 1).float(), sec, thres, hs).tolist() == \
        [True, False]


@pytest.mark.parametrize('keep_true', [False, True])
def test_update_bank_rewrites_frames_1_2_of_a_requesting_sample(tmp_path, keep_true):
    bank = _bank(tmp_path)
    bank['vid']['labeled'] = {'00000', '00002'}
    model = make_model('--phase2_train', '0', bank=bank,
                       *(['--phase2_keep_true_labels'] if keep_true else []))
    calls = []
    model.bank_writer.rewrite_frames = lambda forward, *a: calls.append(a) or len(a[-1])
    batch = make_batch(labeled=(True, False, True), b=2)
    batch['info']['name'] = ['vid', 'other_video']
    frozen = batch['labeled'][:, 1:] & keep_true
    wanted = torch.tensor([[True, False], [True, True]])
    n = model.bank_writer.update(batch, wanted, frozen, model.label_forward)
    frames = ['00000.jpg', '00001.jpg', '00002.jpg']
    assert calls == [('vid', frames, 1, 2, (1,) if keep_true else (1, 2))]   # not in bank: no
    assert n == len(calls[0][-1])
    calls.clear()
    assert model.bank_writer.update(batch, torch.zeros(2, 2, dtype=torch.bool), frozen,
                                    model.label_forward) == 0
    batch['info']['target_id'][0] = 0                    # frame 0 showed no object
    assert model.bank_writer.update(batch, wanted, frozen, model.label_forward) == 0
    assert not calls


def test_do_pass_asks_for_a_rewrite_only_when_the_target_grew(tmp_path):
    """One batch: sample 0's confident target reaches beyond its old region, sample 1's lies
    inside it (its region only shrinks): only sample 0 is rewritten, frames 1 and 2."""
    model = make_model('--phase2_train', '0', '--phase2_start_update', '0',
                       '--update_pseudo_bank', '0', '--phase2_thres', '0.9', bank=_bank(tmp_path))
    calls = []
    model.bank_writer.rewrite_frames = lambda forward, *a: calls.append((a[1][0], a[-1])) or 1
    batch = make_batch(labeled=(True, True, True), b=2)
    batch['info']['name'] = ['vid', 'vid']
    batch['info']['frames'][0] = ['00000.jpg', '00001.jpg']     # frame 0 tells them apart
    logits = torch.zeros(2, 3, C, C)
    logits[0, 1] = _region(1, (2, 16, 2, 16))[0].float() * 20 - 10   # confident target
    logits[1, 1] = _region(1, (6, 12, 6, 12))[0].float() * 20 - 10
    logits[:, 0, :2] = 10                                       # confident background
    logits[1, 0, 4:6] = 10                                      # ... over sample 1's region
    model._reference_logits = lambda *args: (logits, logits)
    stats = step(model, batch, 0)
    assert calls == [('00000.jpg', (1, 2))] and stats['bank/writes'] == 1


def test_sample_info_collated_and_list():
    batch = make_batch()
    assert sample_info(batch['info'], 1) == ('vid', ['00000.jpg', '00001.jpg', '00002.jpg'], 1, 2)
    listed = [{'name': 'a', 'frames': ['1.jpg', '2.jpg', '3.jpg'], 'target_id': 4,
               'second_id': 0}]
    assert sample_info(listed, 0) == ('a', ['1.jpg', '2.jpg', '3.jpg'], 4, 0)


def test_phase2_refresh_stats_count_confident_pixels():
    """pseudo/refresh_confident is the share of frames 1-2 where the reference prediction
    passes --phase2_thres, not the share of labeled pixels (every bank pixel is labeled)."""
    b = 2
    model = make_model('--phase2_train', '0', '--phase2_start_update', '0',
                       '--phase2_thres', '0.8')
    ref = _fixed_reference(model, b)
    batch = make_batch(labeled=(True, False, True), b=b)
    bank_cls = batch['cls_gt'].clone()
    batch['cls_gt'] = torch.where(bank_cls == IGNORE, 0, bank_cls)      # a bank: no -1
    stats = step(model, batch, 0)
    conf, changed = [], []
    for f in (1, 2):
        prob = torch.softmax(ref[f - 1], 1)
        pl = pseudo_labels(prob[:, 0], prob[:, 1], prob[:, 2], 0.8, torch.tensor([True] * b))
        conf.append(pl != IGNORE)
        changed.append(torch.where(pl == IGNORE, batch['cls_gt'][:, f], pl)
                       != batch['cls_gt'][:, f])
    want = float(torch.stack(conf).float().mean())
    assert 0.0 < want < 1.0
    assert stats['pseudo/refresh_confident'] == pytest.approx(want)
    assert stats['pseudo/refresh_changed'] == pytest.approx(float(torch.stack(changed).float().mean()))
