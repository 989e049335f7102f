"""STCNModel on hand-made batches (CPU, 32x32 crops): teacher, pseudo labels, bank update."""
import os

import numpy as np
import torch
from PIL import Image

from model.losses import IGNORE, pseudo_labels
from model.model import STCNModel, sample_info
from util.distributed import DistInfo
from util.hyper_para import HyperParameters
from util.io import read_mask, write_mask

C = 32


def make_model(*flags, bank=None):
    para = HyperParameters().parse(['--stage', '3', '--crop_size', str(C), '--log_every', '1000',
                                    '--image_every', '1000', *flags])
    torch.manual_seed(0)
    return STCNModel(para, DistInfo(device=torch.device('cpu')), bank=bank)


def make_batch(labeled=(True, False, True), b=2, second=True):
    g = torch.Generator().manual_seed(3)
    cls = torch.zeros(b, 3, C, C, dtype=torch.long)
    cls[:, :, 4:14, 4:14] = 1
    if second:
        cls[:, :, 18:28, 16:30] = 2
    lab = torch.tensor([labeled] * b)
    cls[~lab] = IGNORE
    return {
        'rgb': torch.randn(b, 3, 3, C, C, generator=g),
        'gt': (cls == 1).float()[:, :, None],
        'sec_gt': (cls == 2).float()[:, :, None],
        'cls_gt': cls,
        'selector': torch.tensor([[1.0, 1.0 if second else 0.0]] * b),
        'labeled': lab,
        'info': {'name': ['vid'] * b, 'frames': [['00000.jpg'] * b, ['00001.jpg'] * b,
                                                 ['00002.jpg'] * b],
                 'target_id': torch.tensor([1] * b), 'second_id': torch.tensor([2] * b)},
    }


class TargetRecorder:
    """Wraps the loss to record the class map it is given for each (sample, frame)."""

    def __init__(self, loss_fn):
        self.loss_fn = loss_fn
        self.targets = []

    def __call__(self, logits, target, it):
        self.targets.append(target.clone())
        return self.loss_fn(logits, target, it)

    def frame_targets(self, b):
        """[frame 1 targets [B, H, W], frame 2 targets] of the last do_pass."""
        last = self.targets[-2 * b:]
        return [torch.cat(last[:b]), torch.cat(last[b:])]


def test_teacher_not_run_in_warmup_and_ema():
    model = make_model('--semi', '--use_teacher', '--end_warm', '2', '--ema_alpha', '0.995')
    batch = make_batch(b=1)
    assert model.teacher is None
    model.do_pass(batch, 0)
    # teacher = copy of the student after the first optimiser step
    assert model.teacher is not None
    name = 'decoder.pred.weight'
    s0 = dict(model.net.named_parameters())[name].detach().clone()
    assert torch.equal(dict(model.teacher.named_parameters())[name], s0)
    assert model.teacher_forward_calls == 0
    model.do_pass(batch, 1)                       # still warm-up: unlabeled frame 1 ignored
    assert model.teacher_forward_calls == 0
    s1 = dict(model.net.named_parameters())[name].detach()
    assert not torch.equal(s1, s0)
    # EMA after it 1: a = min(1 - 1/2, 0.995) = 0.5
    assert torch.allclose(dict(model.teacher.named_parameters())[name], 0.5 * s0 + 0.5 * s1,
                          atol=1e-7)
    model.do_pass(batch, 2)                       # it == end_warm: still warm-up
    assert model.teacher_forward_calls == 0
    model.do_pass(make_batch(labeled=(True, True, True), b=1), 3)   # after warm-up, labeled
    assert model.teacher_forward_calls == 0
    stats = model.do_pass(batch, 4)                             # after warm-up, unlabeled
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
    rec = model.loss_fn = TargetRecorder(model.loss_fn)
    ref = _fixed_reference(model, b)
    batch = make_batch(labeled=(True, False, True), b=b)
    for it in (0, 1):                                       # it <= end_warm: warm-up
        model.do_pass(batch, it)
        t1, t2 = rec.frame_targets(b)
        assert torch.all(t1 == IGNORE)                      # unlabeled, warm-up: ignored
        assert torch.equal(t2, batch['cls_gt'][:, 2])       # labeled frame unchanged
    model.do_pass(batch, 2)
    t1, t2 = rec.frame_targets(b)
    prob = torch.softmax(ref[0], 1)
    want = pseudo_labels(prob[:, 0], prob[:, 1], prob[:, 2], 0.7, torch.tensor([True] * b))
    assert torch.equal(t1, want)                            # unlabeled <- pseudo labels
    assert (t1 == IGNORE).any() and (t1 != IGNORE).any()
    assert torch.equal(t2, batch['cls_gt'][:, 2])


def test_phase2_refresh_keeps_labels_where_not_confident():
    b = 2
    model = make_model('--phase2_train', '0', '--phase2_start_update', '1',
                       '--phase2_thres', '0.8')
    rec = model.loss_fn = TargetRecorder(model.loss_fn)
    ref = _fixed_reference(model, b)
    batch = make_batch(labeled=(True, False, True), b=b)
    bank_cls = batch['cls_gt'].clone()
    bank_cls[:, 1] = torch.where(bank_cls[:, 1] == IGNORE, 0, bank_cls[:, 1])
    bank_cls[:, 1, 4:14, 4:14] = 1                 # the bank's label of frame 1
    batch['cls_gt'] = bank_cls
    model.do_pass(batch, 0)                        # before phase2_start_update: bank labels
    t1, _ = rec.frame_targets(b)
    assert torch.equal(t1, bank_cls[:, 1])
    model.do_pass(batch, 1)
    t1, t2 = rec.frame_targets(b)
    prob = torch.softmax(ref[0], 1)
    pl = pseudo_labels(prob[:, 0], prob[:, 1], prob[:, 2], 0.8, torch.tensor([True] * b))
    assert torch.equal(t1, torch.where(pl == IGNORE, bank_cls[:, 1], pl))
    assert torch.equal(t2, bank_cls[:, 2])         # truly labeled frame never refreshed


def test_two_class_loss_for_samples_without_second_object():
    model = make_model()
    rec = model.loss_fn = TargetRecorder(model.loss_fn)
    shapes = []
    orig = rec.loss_fn

    def spy(logits, target, it):
        shapes.append(logits.shape[1])
        return orig(logits, target, it)
    rec.loss_fn = spy
    batch = make_batch(labeled=(True, True, True), second=False)
    batch['selector'][0, 1] = 1.0                  # sample 0 claims a second object
    model.do_pass(batch, 0)
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
    n = model.rewrite_bank_frames('vid', ['00000.jpg', '00001.jpg', '00002.jpg'], 1, 2, (1,))
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
    model.rewrite_bank_frames('vid', ['00000.jpg', '00001.jpg', '00002.jpg'], 1, 2, (2,))
    img = Image.open(os.path.join(root, '00002.png'))
    assert img.mode == 'P' and img.size == (56, 40)
    new = np.asarray(img)
    assert set(np.unique(new)) <= {0, 1, 2, 3}
    assert np.array_equal(new[old == 3], old[old == 3])


def test_update_bank_requests_only_when_target_shrinks(tmp_path):
    bank = _bank(tmp_path)
    model = make_model('--phase2_train', '0', bank=bank)
    calls = []
    model.rewrite_bank_frames = lambda *a: calls.append(a) or 1
    batch = make_batch(labeled=(True, False, False), b=2)
    batch['info']['name'] = ['vid', 'other_video']
    old = torch.zeros(2, 3, C, C, dtype=torch.long)
    old[:, :, 4:14, 4:14] = 1
    grown = old.clone()
    grown[:, 1, 2:16, 2:16] = 1                    # frame 1: superset -> no request
    grown[:, 2, 4:8, 4:14] = 0                     # frame 2: lost pixels -> request
    n = model.update_bank(batch, old, grown, batch['labeled'])
    assert n == 1
    assert calls == [('vid', ['00000.jpg', '00001.jpg', '00002.jpg'], 1, 2, (2,))]
    calls.clear()
    assert model.update_bank(batch, old, old.clone(), batch['labeled']) == 0 and not calls


def test_sample_info_collated_and_list():
    batch = make_batch()
    assert sample_info(batch['info'], 1) == ('vid', ['00000.jpg', '00001.jpg', '00002.jpg'], 1, 2)
    listed = [{'name': 'a', 'frames': ['1.jpg', '2.jpg', '3.jpg'], 'target_id': 4,
               'second_id': 0}]
    assert sample_info(listed, 0) == ('a', ['1.jpg', '2.jpg', '3.jpg'], 4, 0)
