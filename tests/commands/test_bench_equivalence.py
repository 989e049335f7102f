"""The optimised inference path against the reference loop of scripts/bench/baseline.py.

Two claims, on small synthetic videos (1-3 objects, both memory styles, include_last):
  1. Everything but the top-k readout is bitwise the reference: with exact_readout (the
     dense reference form of the readout), InferenceCore's probabilities equal BaselineCore's
     exactly (per-object decoding with shared skip convolutions, in-place decoder, memory
     bank, schedule).
  2. The gathered top-k readout (model.memory.topk_readout) differs from the dense matmul
     only by float rounding (~1e-7): probabilities agree to 1e-5, and masks agree on every
     pixel that is not a tie to within that rounding. A random network makes most pixels
     near-ties between objects (it cannot tell them apart), so that check uses a network
     whose value encoder weights the mask channels up, deciding like a trained one.
Plus a quick run of both bench scripts at tiny sizes.
"""
import copy
import json

import numpy as np
import pytest
import torch

from inference_core import InferenceConfig, InferenceCore
from model.memory import (dense_topk_readout, get_affinity, readout, softmax_topk,
                          topk_readout)
from scripts.bench.baseline import BaselineCore
from util.errors import UserError
from scripts.data.synthetic_video import make_video
from video_runner import label_tensor

T, H, W = 6, 40, 56          # pads to 48 x 64: 12 memory positions per frame


pytestmark = pytest.mark.usefixtures('one_thread')


@pytest.fixture(scope='module')
def decisive_net(net):
    sharp = copy.deepcopy(net)
    with torch.no_grad():
        sharp.value_encoder.conv1.weight[:, 3:] *= 100      # mask channels (own, others)
    return sharp


def video(k, seed=0):
    """(images [1, T, 3, H, W] normalised, contiguous; label mask uint8 [H, W] of frame 0)."""
    frames, masks = make_video(np.random.default_rng(seed * 10 + k), T, H, W, k)
    x = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float().div(255).contiguous()
    mean = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
    std = torch.tensor([0.229, 0.224, 0.225])[:, None, None]
    return ((x - mean) / std)[None], masks[0]


def run_both(net, k, **kw):
    images, mask = video(k)
    ours = InferenceCore(net, images, k, InferenceConfig(**kw))
    ours.interact(label_tensor(mask, k), 0, T)
    base = BaselineCore(net, images, k, **kw)
    base.interact(label_tensor(mask, k), 0, T)
    return ours, base


SETTINGS = [
    (1, dict(mem_every=2)),
    (2, dict(mem_every=2)),
    (3, dict(mem_every=3, mem_style='youtube', include_last=True)),
    (2, dict(mem_every=1, mem_style='youtube')),
    (3, dict(mem_every=2, include_last=True)),
]


@pytest.mark.parametrize('k, kw', SETTINGS)
def test_exact_readout_is_bitwise_the_reference(net, k, kw):
    """exact_readout: the dense readout form; everything else is the optimised path."""
    images, mask = video(k)
    ours = InferenceCore(net, images, k, InferenceConfig(exact_readout=True, **kw))
    ours.interact(label_tensor(mask, k), 0, T)
    base = BaselineCore(net, images, k, **kw)
    base.interact(label_tensor(mask, k), 0, T)
    assert ours.mem_frames == base.mem_frames and ours.mem.temp_frame == base.temp_frame
    for t in range(T):
        assert torch.equal(ours.get_prob(t), base.get_prob(t)), f'frame {t}'
        assert np.array_equal(ours.get_mask(t), base.get_mask(t))


@pytest.mark.parametrize('k, kw', SETTINGS)
def test_optimised_masks_match_the_baseline(decisive_net, k, kw):
    ours, base = run_both(decisive_net, k, **kw)
    assert ours.mem_frames == base.mem_frames
    near_ties = pixels = 0
    for t in range(T):
        po, pb = ours.get_prob(t), base.get_prob(t)
        diff = float((po - pb).abs().max())
        assert diff < 1e-5, f'frame {t}: probabilities differ by {diff}'
        top2 = pb.topk(2, dim=0).values if k > 0 else None
        decided = (top2[0] - top2[1]) > 2e-5        # a rounding of 1e-5 cannot flip these
        same = po.argmax(0) == pb.argmax(0)
        assert bool(same[decided].all()), f'frame {t}: a decided pixel changed class'
        near_ties += int((~decided).sum())
        pixels += decided.numel()
    assert near_ties <= 0.01 * pixels                # the check above covers almost all pixels
    if k == 1:                                       # one object: no near-ties between objects
        for t in range(T):
            assert np.array_equal(ours.get_mask(t), base.get_mask(t))


def test_dense_topk_readout_is_the_reference_arithmetic(net):
    """dense_topk_readout (exact_readout) == BaselineCore.read_memory, bitwise."""
    g = torch.Generator().manual_seed(4)
    mk, qk = torch.randn(1, 64, 120, generator=g), torch.randn(1, 64, 30, generator=g)
    rows = torch.randn(120, 3 * 512, generator=g)
    base = BaselineCore(net, torch.zeros(1, 3, 16, 16), 3)
    base.mem_k, base.mem_v = mk, rows.t().reshape(3, 512, 120).contiguous()   # [K, 512, N]
    ref = base.read_memory(qk.view(1, 64, 5, 6))                               # [K, 512, 5, 6]
    ref = ref.flatten(2).permute(2, 0, 1).reshape(30, -1)                      # [M, K*512]
    assert torch.equal(dense_topk_readout(mk, qk, rows, 20, 3), ref)


def test_topk_readout_equals_dense_readout():
    g = torch.Generator().manual_seed(3)
    mk, qk = torch.randn(1, 64, 90, generator=g), torch.randn(1, 64, 30, generator=g)
    rows = torch.randn(90, 2 * 512, generator=g)
    mv = rows.t().reshape(1, 2 * 512, 90)
    ref = readout(softmax_topk(get_affinity(mk, qk), 20), mv)[0].t()       # [M, K*512]
    out = topk_readout(mk, qk, rows, 20)
    assert out.shape == ref.shape and torch.allclose(out, ref, atol=1e-5)
    # k covering the whole memory: the full softmax readout
    full = readout(torch.softmax(get_affinity(mk, qk), 1), mv)[0].t()
    assert torch.allclose(topk_readout(mk, qk, rows, 500), full, atol=1e-5)
    # strided keys (a view of a larger preallocated bank) give the same result
    bank = torch.zeros(1, 64, 200)
    bank[..., :90] = mk
    assert torch.equal(topk_readout(bank[..., :90], qk, rows, 20), out)


def test_batched_and_per_object_paths_agree(net):
    """The CUDA default (objects in one batch) against the CPU default (one at a time)."""
    g = torch.Generator().manual_seed(5)
    frame = torch.randn(1, 3, 48, 64, generator=g)
    masks = (torch.rand(3, 1, 48, 64, generator=g) > 0.6).float()
    with torch.inference_mode():
        _, v16, f16, f8, f4 = net.encode_key(frame)
        a = net.encode_value(frame, f16, masks, per_object=True)
        b = net.encode_value(frame, f16, masks, per_object=False)
        assert a.shape == (3, 512, 1, 3, 4) and torch.allclose(a, b, atol=1e-4, rtol=1e-5)
        mem = torch.randn(3, 512, 3, 4, generator=g)
        pa = net.decode(mem, v16, f8, f4, per_object=True)
        pb = net.decode(mem, v16, f8, f4, per_object=False)
        ref = torch.cat([torch.sigmoid(net.decoder(torch.cat([mem[i:i + 1], v16], 1), f8, f4))
                         for i in range(3)])
    assert torch.equal(pa, ref)                      # per object: bitwise the module's forward
    assert torch.allclose(pb, ref, atol=1e-6)


def test_infer_bench_runs_tiny(tmp_path, capsys):
    from scripts.bench import infer
    out = tmp_path / 'infer.json'
    assert infer.main(['--height', '64', '--width', '96', '--frames', '4', '--repeats', '1',
                       '--objects', '1', '2', '--sweep', '1', '--json', str(out)]) == 0
    res = json.loads(out.read_text())
    for k in ('1', '2'):
        v = res['videos'][k]
        assert v['ours']['frames'] == v['base']['frames'] == 4
        assert v['max_prob_diff'] < 1e-5 and v['speedup'] > 0
        assert set(v['ours']['parts_per_frame_s']) == {'key', 'readout', 'decode', 'value',
                                                        'other'}
        assert all(s >= 0 for s in v['ours']['parts_per_frame_s'].values())
    assert [r['memory_frames'] for r in res['readout_sweep']] == [1, 1]
    text = capsys.readouterr().out
    assert 'ours/base' in text and 'FPS' in text


def test_train_bench_runs_tiny(tmp_path):
    from scripts.bench import train
    out = tmp_path / 'train.json'
    assert train.main(['--batch', '1', '--crop', '32', '--iters', '1', '--device', 'cpu',
                       '--configs', 'semi_warm', 'phase2', '--json', str(out)]) == 0
    res = json.loads(out.read_text())['configs']
    warm = res['semi_warm']
    # before end_warm: no teacher forward here, the original's unused one in the baseline
    # (the teacher exists from the untimed first step on, so the timed step has one)
    assert warm['ours']['teacher_forwards'] == 0 and warm['base']['extra_forwards'] == 1
    # phase-2 refresh without a teacher: the baseline runs a separate no-grad forward
    assert res['phase2']['ours']['extra_forwards'] == 0
    assert res['phase2']['base']['extra_forwards'] == 2          # untimed step + 1 timed
    assert all(r[w]['sec_per_it'] > 0 for r in res.values() for w in ('ours', 'base'))


def test_bank_bench_runs_tiny(tmp_path, capsys):
    from scripts.bench import bank
    out = tmp_path / 'bank.json'
    assert bank.main(['--height', '48', '--width', '64', '--frames', '6', '--videos', '1',
                      '--device', 'cpu', '--json', str(out)]) == 0
    res = json.loads(out.read_text())
    assert res['identical'] and [r['way'] for r in res['runs']] == ['four', 'bank']
    four, fast = res['runs']
    assert four['frames'] == 2 * 6 + 2 and fast['frames'] < four['frames']
    assert res['ratio_frames'] == four['frames'] / fast['frames'] and res['speedup_wall'] > 0
    assert 'byte-identical' in capsys.readouterr().out


def test_amp_bench_where_masks_differ():
    from scripts.bench.amp import near_edge, where_differ
    a = np.zeros((30, 30), np.uint8)
    a[5:15, 5:15] = 1                             # object 1: a 10x10 square
    a[0:3, 17:20] = 2                             # object 2: a 3x3 block
    b = a.copy()
    b[5, 5:15] = 0                                # object 1 loses its top row: on an edge
    b[0:3, 17:20] = 0                             # object 2 lost as a whole (on edges)
    b[22:29, 0:7] = 3                             # object 3 only in b: 7x7 at the left border
    edge1, edge2 = near_edge(a, 1), near_edge(a, 2)
    assert edge1[4, 10] and edge1[5, 10] and not edge1[6, 10] and not edge1[10, 10]
    assert edge2[3, 10] and edge2[6, 10] and not edge2[7, 10] and not edge2[2, 10]
    res = where_differ(a, b)
    assert res['differ'] == 10 + 9 + 49
    # object 3's pixels more than 2 px from its edges (the image border is none): rows 24-26,
    # columns 0-4
    assert res['at_edge'] == 10 + 9 + 49 - 15
    assert res['objects'] == 3 and res['objects_whole'] == 2 and res['whole_pixels'] == 9 + 49
    assert where_differ(a, a) == {'differ': 0, 'at_edge': 0, 'objects': 2, 'objects_whole': 0,
                                  'whole_pixels': 0}


def test_amp_bench_runs_tiny(tmp_path, ckpt, capsys, monkeypatch):
    from model import precision
    from scripts.bench import amp
    monkeypatch.setattr(precision, 'cpu_native_bf16', lambda: False)
    from scripts.data.synthetic_data import generate
    d = generate(tmp_path, 'davis', videos=3, frames=5, height=48, width=64, objects=2,
                 val_videos=2)
    with pytest.raises(UserError, match='--cpu_bf16'):
        amp.main(['--model', ckpt, '--davis_path', d['root'], '--device', 'cpu'])
    out = tmp_path / 'amp.json'
    assert amp.main(['--model', ckpt, '--davis_path', d['root'], '--device', 'cpu',
                     '--cpu_bf16', '--json', str(out)]) == 0
    res = json.loads(out.read_text())
    assert res['amp_dtype'] == 'torch.bfloat16'
    assert res['ways']['fp32']['frames'] == res['ways']['amp']['frames'] == 2 * 5
    assert all(0 <= res['ways'][w]['J&F-Mean'] <= 1 for w in ('fp32', 'amp'))
    assert 0 <= res['pixels_differ'] <= 1 and res['speedup'] > 0
    ag = res['agreement']
    assert ag['differ'] == round(res['pixels_differ'] * ag['pixels'])
    assert 0 <= ag['at_edge'] <= ag['differ'] and 0 <= ag['whole_pixels'] <= ag['differ']
    out = capsys.readouterr().out
    assert 'amp/fp32 speed' in out and 'of the differing pixels' in out
    assert precision.amp_dtype('cpu') is None            # restored
