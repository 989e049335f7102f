"""The CUDA mixed-precision code paths, run under CPU autocast (bf16) as a stand-in.

Without a GPU the CUDA rules (a bf16 memory bank, autocast with a gradient scaler and its
checkpoint state) would never run in the suite. Here the device rules are patched to give
them on the CPU: every AMP path must run, really compute in bf16, and give masks / losses of
the right form. (The CPU's own --amp: tests/inference/test_cpu_amp.py; speed and J&F:
scripts/bench/amp.py; on a GPU: tests/inference/test_cuda.py.)
"""
import numpy as np
import pytest
import torch

import eval_davis
import inference_core
from inference_core import InferenceConfig
import model.trainer as trainer
from model import precision
from helpers import davis_tree, make_batch, make_model, step

pytestmark = pytest.mark.usefixtures('one_thread')


def record_dtypes(module):
    seen = []
    handle = module.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    return seen, handle


@pytest.fixture
def cpu_amp(monkeypatch):
    """The CUDA rules on the CPU: a bf16 memory bank, autocast with a gradient scaler."""
    monkeypatch.setattr(precision, 'cpu_native_bf16', lambda: True)
    monkeypatch.setattr(trainer, 'training_amp', lambda device, cpu_bf16=False:
                        (torch.bfloat16, True))
    monkeypatch.setattr(inference_core, 'memory_dtype',
                        lambda device, amp: torch.bfloat16 if amp else torch.float32)


@pytest.mark.parametrize('settings', [dict(mem_style='davis', mem_every=2),
                                      dict(mem_style='youtube', mem_every=1, include_last=True)])
def test_inference_amp_path(cpu_amp, net, settings):
    g = torch.Generator().manual_seed(0)
    images = torch.randn(6, 3, 40, 56, generator=g)
    labels = torch.zeros(2, 1, 40, 56)
    labels[0, :, 5:20, 5:25] = 1
    labels[1, :, 22:35, 30:50] = 1
    seen, handle = record_dtypes(net.decoder.up_8_4.out_conv.conv2)
    head, head_handle = record_dtypes(net.decoder.pred)
    try:
        core = inference_core.InferenceCore(net, images, 2, InferenceConfig(amp=True, **settings))
        core.interact(labels, 0, 6)
    finally:
        handle.remove()
        head_handle.remove()
    assert core.amp and core.mem.keys.dtype == core.mem.rows.dtype == torch.bfloat16
    assert seen and set(seen) == {torch.bfloat16}            # the decoder ran in bf16
    assert head and set(head) == {torch.float32}             # its logits: fp32 on a CPU
    for ti in range(6):
        p = core.get_prob(ti)
        assert p.dtype == torch.float32 and torch.isfinite(p).all()
        assert torch.allclose(p.sum(0), torch.ones(40, 56), atol=1e-2)
        assert set(np.unique(core.get_mask(ti))) <= {0, 1, 2}


def test_eval_script_amp_flag_on_the_amp_path(cpu_amp, tmp_path, ckpt, capsys):
    davis_tree(str(tmp_path / 'DAVIS'), t=4)
    stats = eval_davis.main(['--model', ckpt, '--davis_path', str(tmp_path / 'DAVIS'),
                             '--output', str(tmp_path / 'out'), '--amp', '--device', 'cpu'])
    assert stats['frames'] == 4 and 'fp32' not in capsys.readouterr().out


def test_training_amp_path_and_scaler_checkpoint(cpu_amp, tmp_path):
    model = make_model('--semi', '--use_teacher', '--end_warm', '1', '--phase2_train', '3',
                       '--phase2_start_update', '3')
    model.save_path = str(tmp_path / 'run')
    assert model.amp and model.scaler.is_enabled()
    seen, handle = record_dtypes(model.net.decoder.pred)
    try:
        for it in range(4):        # warm-up, semi with the teacher, phase 2 with refresh
            step(model, make_batch(b=2), it)
    finally:
        handle.remove()
    assert torch.bfloat16 in seen and model.teacher_forward_calls >= 1
    assert all(torch.isfinite(p).all() for p in model.net.parameters())
    model.scaler.update(new_scale=1024.0)              # not the initial scale
    model.save(4)
    ck = torch.load(str(tmp_path / 'run_checkpoint.pth'), weights_only=False)
    assert ck['scaler'] is not None and ck['scaler']['scale'] == 1024.0
    again = make_model('--semi', '--use_teacher')
    assert again.scaler.get_scale() != 1024.0
    assert again.load_model(str(tmp_path / 'run_checkpoint.pth')) == 4
    assert again.scaler.get_scale() == 1024.0
