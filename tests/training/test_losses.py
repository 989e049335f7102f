"""Losses, pseudo labels and the EMA rule (fast, no STCN network)."""
import itertools
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from model.losses import IGNORE, BootstrappedCE, bootstrap_fraction, pseudo_labels
from model.trainer import ema_decay, ema_update, make_teacher


def _spec_rule(bg, t, s, thres, has_second):
    """The rule of docs/method.md ("Pseudo labels") pixel by pixel: -1, then 2, 1, 0 (later
    wins)."""
    out = torch.full(t.shape, -1, dtype=torch.long)
    for idx in itertools.product(*[range(n) for n in t.shape]):
        b = idx[0]
        if s is not None and bool(has_second[b]) and s[idx] >= thres:
            out[idx] = 2
        if t[idx] >= thres:
            out[idx] = 1
        if bg[idx] >= thres:
            out[idx] = 0
    return out


def test_pseudo_labels_hand_made():
    # one sample, 1 x 5 pixels; columns: confident bg, target, second, nothing, exactly thres
    bg = torch.tensor([[[0.95, 0.02, 0.03, 0.40, 0.05]]])
    t = torch.tensor([[[0.03, 0.97, 0.02, 0.35, 0.90]]])
    s = torch.tensor([[[0.02, 0.01, 0.95, 0.25, 0.05]]])
    out = pseudo_labels(bg, t, s, 0.9, True)
    assert out.tolist() == [[[0, 1, 2, -1, 1]]]
    # no second object: its confident pixel is left ignored
    assert pseudo_labels(bg, t, s, 0.9, False).tolist() == [[[0, 1, -1, -1, 1]]]
    assert pseudo_labels(bg, t, None, 0.9, True).tolist() == [[[0, 1, -1, -1, 1]]]


def test_pseudo_labels_precedence_low_threshold():
    # with a threshold <= 1/3 several classes pass: bg beats target beats second
    bg = torch.tensor([[[0.34, 0.10, 0.34]]])
    t = torch.tensor([[[0.33, 0.45, 0.33]]])
    s = torch.tensor([[[0.33, 0.45, 0.33]]])
    assert pseudo_labels(bg, t, s, 0.3, True).tolist() == [[[0, 1, 0]]]
    assert pseudo_labels(bg, t, s, 0.4, True).tolist() == [[[-1, 1, -1]]]
    assert pseudo_labels(bg, t, s, 0.0, True).tolist() == [[[0, 0, 0]]]


def test_pseudo_labels_match_rule_per_sample():
    g = torch.Generator().manual_seed(0)
    prob = torch.softmax(torch.randn(3, 3, 4, 5, generator=g) * 3, dim=1)
    has_second = torch.tensor([True, False, True])
    for thres in (0.2, 0.5, 0.9):
        got = pseudo_labels(prob[:, 0], prob[:, 1], prob[:, 2], thres, has_second)
        want = _spec_rule(prob[:, 0], prob[:, 1], prob[:, 2], thres, has_second)
        assert torch.equal(got, want)
    assert not (pseudo_labels(prob[:, 0], prob[:, 1], prob[:, 2], 0.2, has_second)[1] == 2).any()


def test_bootstrap_fraction_schedule():
    assert bootstrap_fraction(0, 20000, 70000) == 1.0
    assert bootstrap_fraction(19999, 20000, 70000) == 1.0
    assert bootstrap_fraction(20000, 20000, 70000) == pytest.approx(1.0)
    assert bootstrap_fraction(45000, 20000, 70000) == pytest.approx(1 - 0.85 / 2)
    assert bootstrap_fraction(70000, 20000, 70000) == pytest.approx(0.15)
    assert bootstrap_fraction(10 ** 6, 20000, 70000) == pytest.approx(0.15)


def test_plain_ce_before_warm_matches_torch():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 3, 6, 7, generator=g)
    target = torch.randint(-1, 3, (2, 6, 7), generator=g)
    loss, p = BootstrappedCE(20000, 70000)(logits, target, 5)
    assert p == 1.0
    assert torch.allclose(loss, F.cross_entropy(logits, target, ignore_index=-1))


def test_ignored_pixels_have_zero_loss_and_gradient():
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(1, 3, 8, 8, generator=g, requires_grad=True)
    target = torch.randint(0, 3, (1, 8, 8), generator=g)
    target[:, :4] = IGNORE
    loss_fn = BootstrappedCE(0, 10)
    for it in (0, 5, 100):                   # plain, partially bootstrapped, fully bootstrapped
        logits.grad = None
        loss, _ = loss_fn(logits, target, it)
        loss.backward()
        assert torch.all(logits.grad[:, :, :4] == 0)
        assert logits.grad[:, :, 4:].abs().sum() > 0
        # changing the logits of ignored pixels does not change the loss
        other = logits.detach().clone()
        other[:, :, :4] = torch.randn(1, 3, 4, 8, generator=g) * 10
        assert torch.allclose(loss_fn(other, target, it)[0], loss.detach())


def test_bootstrap_topk_over_valid_pixels_only():
    # 10 valid pixels with known losses, 90 ignored: after end_warm p = 0.15 -> k = 1
    logits = torch.zeros(1, 2, 10, 10)
    target = torch.full((1, 10, 10), IGNORE)
    target[0, 0] = 1
    logits[0, 1, 0] = torch.linspace(-3, 3, 10)       # CE(target 1) = softplus(-x)
    loss, p = BootstrappedCE(0, 1)(logits, target, 5)
    assert p == pytest.approx(0.15)
    assert loss.item() == pytest.approx(math.log1p(math.exp(3)), rel=1e-5)   # hardest pixel
    # halfway: p = 0.575 -> k = 5 hardest valid pixels
    loss, p = BootstrappedCE(0, 10)(logits, target, 5)
    want = F.softplus(-torch.linspace(-3, 3, 10))[:int(10 * p)].mean()
    assert loss.item() == pytest.approx(want.item(), rel=1e-5)


def test_all_ignored_gives_zero_loss_with_graph():
    logits = torch.randn(1, 3, 4, 4, requires_grad=True)
    loss, _ = BootstrappedCE(0, 1)(logits, torch.full((1, 4, 4), IGNORE), 3)
    assert loss.item() == 0.0
    loss.backward()
    assert torch.all(logits.grad == 0)


def test_second_class_ignored_when_two_classes_scored():
    logits = torch.zeros(1, 2, 1, 2)
    loss, _ = BootstrappedCE(10, 20)(logits, torch.tensor([[[2, 1]]]), 0)
    assert loss.item() == pytest.approx(math.log(2))


class _Tiny(nn.Module):
    def __init__(self, w, b):
        super().__init__()
        self.lin = nn.Linear(2, 1)
        self.register_buffer('stat', torch.zeros(1))
        with torch.no_grad():
            self.lin.weight.copy_(torch.tensor([w]))
            self.lin.bias.fill_(b)


def test_ema_decay_rule():
    assert ema_decay(1, 0.995) == pytest.approx(0.5)
    assert ema_decay(3, 0.995) == pytest.approx(0.75)
    assert ema_decay(10 ** 6, 0.995) == pytest.approx(0.995)


def test_ema_closed_form():
    """Student weights s_1, s_2, s_3 after iterations 0, 1, 2: the teacher is a copy after
    iteration 0 then t <- a t + (1 - a) s with a = min(1 - 1/(it+1), alpha)."""
    student = _Tiny([1.0, 2.0], 0.5)
    teacher = make_teacher(student)
    assert not any(p.requires_grad for p in teacher.parameters())
    alpha = 0.6
    weights = {1: ([3.0, -1.0], 1.5, 7.0), 2: ([0.0, 4.0], -2.0, 9.0)}
    for it, (w, b, stat) in weights.items():
        with torch.no_grad():
            student.lin.weight.copy_(torch.tensor([w]))
            student.lin.bias.fill_(b)
            student.stat.fill_(stat)
        ema_update(teacher, student, ema_decay(it, alpha))
    # it 1: a = 0.5 -> t = 0.5 * [1, 2] + 0.5 * [3, -1] = [2, 0.5]; bias 1.0
    # it 2: a = min(2/3, 0.6) = 0.6 -> t = 0.6 * [2, 0.5] + 0.4 * [0, 4] = [1.2, 1.9]
    assert torch.allclose(teacher.lin.weight, torch.tensor([[1.2, 1.9]]))
    assert teacher.lin.bias.item() == pytest.approx(0.6 * 1.0 + 0.4 * -2.0)
    assert teacher.stat.item() == 9.0                      # buffers copied, not averaged
