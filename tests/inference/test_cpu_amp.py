"""--amp on a CPU: bf16 autocast where the CPU computes bf16 natively, fp32 (and a note) where not.

The real detection decides the first test (skipped on a CPU without native bf16); the others
set the detection both ways (precision.cpu_native_bf16) so that each path runs everywhere.
"""
import contextlib
import copy
import io

import numpy as np
import pytest
import torch
import torch.nn as nn

import eval_davis
import inference_core
from inference_core import InferenceConfig
import video_runner
from model import precision
from helpers import davis_tree, make_batch, make_model, step

pytestmark = pytest.mark.usefixtures('one_thread')


def conv_dtypes(net, exclude=()):
    """Hooks on every Conv2d of net but those in exclude: the dtypes of their outputs, and the
    hook handles."""
    seen = []
    handles = [m.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
               for m in net.modules() if isinstance(m, nn.Conv2d) and m not in exclude]
    return seen, handles


def propagate(net, amp):
    """6 frames of 40x56 with two labeled objects -> (core, conv output dtypes but the
    decoder's last convolution's, that one's output dtypes)."""
    g = torch.Generator().manual_seed(0)
    images = torch.randn(6, 3, 40, 56, generator=g)
    labels = torch.zeros(2, 1, 40, 56)
    labels[0, :, 5:20, 5:25] = 1
    labels[1, :, 22:35, 30:50] = 1
    seen, handles = conv_dtypes(net, exclude=(net.decoder.pred,))
    head, head_handles = conv_dtypes(net.decoder.pred)
    try:
        core = inference_core.InferenceCore(net, images, 2, InferenceConfig(mem_every=2, amp=amp))
        core.interact(labels, 0, 6)
    finally:
        for h in handles + head_handles:
            h.remove()
    return core, seen, head


def set_native_bf16(monkeypatch, value):
    monkeypatch.setattr(precision, 'cpu_native_bf16', lambda: value)


def test_detection_reads_the_cpu_flags(tmp_path):
    info = tmp_path / 'cpuinfo'
    info.write_text('processor\t: 0\nflags\t\t: fpu sse2 avx512f avx512_bf16\n\n')
    assert precision.cpu_flags(str(info)) == {'fpu', 'sse2', 'avx512f', 'avx512_bf16'}
    assert precision.cpu_flags(str(tmp_path / 'missing')) == set()
    expect = precision.cpu_bf16_flag() is not None and torch.backends.mkldnn.is_available()
    assert precision.cpu_native_bf16() == expect


@pytest.mark.skipif(not precision.cpu_native_bf16(), reason='this CPU has no native bf16')
def test_amp_on_a_native_bf16_cpu_runs_the_convolutions_in_bf16(net):
    assert precision.amp_dtype('cpu') == torch.bfloat16
    core, seen, head = propagate(net, amp=True)
    assert core.amp and len(seen) > 100 and set(seen) == {torch.bfloat16}
    # kept in fp32: the memory bank (readout), the decoder's last convolution (the logits),
    # the aggregated probabilities
    assert head and set(head) == {torch.float32}
    assert core.mem.keys.dtype == core.mem.rows.dtype == torch.float32
    fp32, _, _ = propagate(net, amp=False)
    for ti in range(6):
        p = core.get_prob(ti)
        assert core.prob[ti].dtype == torch.float32 and torch.isfinite(p).all()
        assert torch.allclose(p.sum(0), torch.ones(40, 56), atol=1e-5)
        assert not torch.equal(p, fp32.get_prob(ti)) or ti == 0      # bf16 rounds differently


def test_amp_without_native_bf16_changes_nothing(net, monkeypatch):
    set_native_bf16(monkeypatch, False)
    assert precision.amp_dtype('cpu') is None
    assert 'running in fp32' in precision.amp_note('cpu', True)
    amp, seen, head = propagate(net, amp=True)
    fp32, _, _ = propagate(net, amp=False)
    assert not amp.amp and seen and set(seen + head) == {torch.float32}
    for ti in range(6):
        assert torch.equal(amp.prob[ti], fp32.prob[ti])             # bitwise the fp32 run


def test_forced_detection_gives_bf16(net, monkeypatch):
    """The bf16 path, whatever this machine's CPU (autocast runs bf16 slowly without it)."""
    set_native_bf16(monkeypatch, True)
    core, seen, head = propagate(net, amp=True)
    assert core.amp and set(seen) == {torch.bfloat16} and set(head) == {torch.float32}
    assert 'bf16 autocast on this CPU' in precision.amp_note('cpu', True)


def channels_last(t):
    return t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous()


@pytest.mark.parametrize('native', [True, False])
def test_cpu_bf16_runs_in_channels_last_and_fp32_keeps_the_layout(native, net, ckpt,
                                                                   monkeypatch):
    """Under CPU bf16 autocast the frames and the loaded weights are channels-last (oneDNN's
    bf16 convolutions are faster so); fp32, and --amp without native bf16, keep NCHW."""
    set_native_bf16(monkeypatch, native)
    layouts = []
    hook = net.key_encoder.conv1.register_forward_hook(
        lambda m, i, o: layouts.append(channels_last(i[0])))
    try:
        propagate(net, amp=True)
        amp_layouts, layouts[:] = list(layouts), []
        propagate(net, amp=False)
    finally:
        hook.remove()
    assert amp_layouts and set(amp_layouts) == {native} and set(layouts) == {False}
    for amp in (True, False):
        loaded = video_runner.load_model(ckpt, 'cpu', amp=amp)
        convs = [m for m in loaded.modules() if isinstance(m, nn.Conv2d)]
        prepared = native and amp
        assert {channels_last(m.weight) for m in convs if m.kernel_size[0] > 1} == {prepared}
        stored = torch.bfloat16 if prepared else torch.float32
        assert {m.weight.dtype for m in convs if m is not loaded.decoder.pred} == {stored}
        assert loaded.decoder.pred.weight.dtype == torch.float32         # the fp32 head
        if prepared:
            with pytest.raises(ValueError, match='prepared for --amp'):
                inference_core.InferenceCore(loaded, torch.zeros(2, 3, 32, 32), 1,
                                             InferenceConfig(amp=False))


def test_weights_stored_in_bf16_give_what_autocast_gives(net, monkeypatch):
    """prepare_for_amp's bf16 weights are what autocast casts the fp32 ones to at each call:
    the probabilities are bitwise those of the channels-last fp32-weight network."""
    set_native_bf16(monkeypatch, True)
    cast_each_call = copy.deepcopy(net).to(memory_format=torch.channels_last)
    stored = precision.prepare_for_amp(copy.deepcopy(net), 'cpu', True)
    a, _, _ = propagate(cast_each_call, amp=True)
    b, _, _ = propagate(stored, amp=True)
    for ti in range(6):
        assert torch.equal(a.prob[ti], b.prob[ti])


@pytest.mark.parametrize('native', [True, False])
def test_eval_script_says_once_what_amp_does(native, tmp_path, ckpt, monkeypatch):
    set_native_bf16(monkeypatch, native)
    davis_tree(str(tmp_path / 'DAVIS'), t=4)
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        stats = eval_davis.main(['--model', ckpt, '--davis_path', str(tmp_path / 'DAVIS'),
                                 '--output', str(tmp_path / 'out'), '--amp', '--device', 'cpu'])
    printed = buf.getvalue()
    assert stats['frames'] == 4
    want = 'bf16 autocast on this CPU' if native else 'no native bf16'
    assert printed.count('note: --amp') == 1 and want in printed


@pytest.mark.parametrize('native', [True, False])
def test_training_cpu_bf16_flag(native, monkeypatch, tmp_path, capsys):
    """--cpu_bf16: bf16 autocast without a gradient scaler where native, else fp32 and a note;
    without the flag a CPU trains in fp32 whatever it supports."""
    set_native_bf16(monkeypatch, native)
    assert make_model().amp_dtype is None
    model = make_model('--cpu_bf16')
    assert model.amp_dtype == (torch.bfloat16 if native else None)
    assert not model.scaler.is_enabled()
    assert ('no native bf16' in capsys.readouterr().out) != native
    seen, handles = conv_dtypes(model.net)
    try:
        stats = step(model, make_batch(b=1), 0)
    finally:
        for h in handles:
            h.remove()
    assert set(seen) == {torch.bfloat16 if native else torch.float32}
    assert np.isfinite(stats['loss/total'])
    model.save_path = str(tmp_path / 'run')
    model.save(1)
    assert torch.load(str(tmp_path / 'run_checkpoint.pth'), weights_only=False)['scaler'] is None


def test_training_amp_on_cuda_is_fp16_with_a_scaler():
    assert precision.training_amp(torch.device('cuda')) == (torch.float16, True)
    assert precision.training_amp(torch.device('cpu'), cpu_bf16=False) == (None, False)


def test_decoder_logits_in_fp32_under_autocast():
    from model.modules import Decoder
    torch.manual_seed(0)
    dec = Decoder().eval()
    f16, f8, f4 = torch.randn(1, 1024, 2, 3), torch.randn(1, 512, 4, 6), torch.randn(1, 256, 8, 12)
    with torch.no_grad():
        plain, head = dec(f16, f8, f4), dec(f16, f8, f4, head_fp32=True)
        assert plain.shape == (1, 1, 32, 48) and torch.equal(plain, head)   # no autocast: same
        with torch.autocast('cpu', dtype=torch.bfloat16):
            low, head = dec(f16, f8, f4), dec(f16, f8, f4, head_fp32=True)
    assert low.dtype == torch.bfloat16 and head.dtype == torch.float32
    # fp32 weights for the last convolution: closer to the fp32 logits than bf16 ones
    assert (head - plain).abs().mean() < (low.float() - plain).abs().mean()
