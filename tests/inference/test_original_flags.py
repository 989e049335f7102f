"""The originals' command lines and precision (docs/flags.md, "Flags of the originals").

--amp at inference is fp16 autocast on CUDA as in both originals (bf16 only with --amp_dtype
bf16), bf16 on a CPU that computes it natively; eval_generic.py is STCN's: AMP on unless
--amp_off, frames resized to 480p. The originals' eval command lines parse with their
defaults.
"""
import os

import pytest
import torch

import eval_davis
import eval_davis_2016
import eval_driver
import eval_generic
import eval_youtube
from model import precision
from helpers import TWO, davis_tree, make_scene, write_frames
from util.image_io import write_mask


@pytest.mark.parametrize('native', [True, False])
def test_inference_amp_dtype_policy(monkeypatch, native):
    """CUDA: fp16 even on a GPU that computes bf16, bf16 only when asked; CPU: bf16 where
    native whatever --amp_dtype says, else none."""
    monkeypatch.setattr(torch.cuda, 'is_bf16_supported', lambda *a, **k: True)
    monkeypatch.setattr(precision, 'cpu_native_bf16', lambda: native)
    assert precision.inference_amp_dtype('cuda') == torch.float16
    assert precision.inference_amp_dtype('cuda:1', 'bf16') == torch.bfloat16
    assert precision.amp_dtype('cuda', True) == torch.float16
    assert precision.amp_dtype('cuda', 'fp16') == torch.float16
    assert precision.amp_dtype('cuda', 'bf16') == torch.bfloat16
    assert precision.memory_dtype('cuda', 'bf16') == torch.bfloat16
    cpu = torch.bfloat16 if native else None
    assert precision.amp_dtype('cpu', 'fp16') == precision.amp_dtype('cpu', 'bf16') \
        == precision.inference_amp_dtype('cpu') == cpu


@pytest.fixture
def captured(monkeypatch):
    """eval_driver with the model loading and the video loop replaced: what they were given."""
    seen = {}

    def fake_run(net, dataset, out_dir, config, **kw):
        seen.update(vars(config), **kw, dataset=dataset)
        return {}

    def fake_load(path, device, amp=False):
        seen['load_amp'] = amp
    monkeypatch.setattr(eval_driver, 'run_dataset', fake_run)
    monkeypatch.setattr(eval_driver, 'load_model', fake_load)
    return seen


def generic_data(root):
    frames, masks = make_scene(3, TWO, h=24, w=40)
    write_frames(os.path.join(root, 'JPEGImages', 'clip'), ['a', 'b', 'c'], frames)
    write_mask(os.path.join(root, 'Annotations', 'clip', 'a.png'), masks[0])
    return root


def test_eval_generic_is_stcns(tmp_path, captured):
    """AMP on by default (STCN's --amp_off turns it off; --amp changes nothing), frames at
    480p by default (--res -1: as stored)."""
    data = generic_data(str(tmp_path / 'data'))
    eval_generic.main(['--data_path', data, '--output', str(tmp_path / 'o1')])
    assert captured['amp'] == captured['load_amp'] == 'fp16'
    video = captured['dataset'].load('clip')
    assert tuple(video.images.shape[-2:]) == (480, 800) and video.size == (24, 40)
    eval_generic.main(['--data_path', data, '--output', str(tmp_path / 'o2'), '--amp_off',
                       '--res', '-1'])
    assert captured['amp'] is False and captured['load_amp'] is False
    assert tuple(captured['dataset'].load('clip').images.shape[-2:]) == (24, 40)
    eval_generic.main(['--data_path', data, '--output', str(tmp_path / 'o3'), '--amp',
                       '--amp_dtype', 'bf16'])
    assert captured['amp'] == 'bf16'


def test_amp_dtype_reaches_the_core(tmp_path, captured):
    """eval_davis.py: --amp_dtype is what the loader and the runner get with --amp; nothing
    without --amp."""
    davis_tree(str(tmp_path / 'DAVIS'), t=2)
    for flags, amp in (([], False), (['--amp'], 'fp16'), (['--amp', '--amp_dtype', 'bf16'], 'bf16'),
                       (['--amp_dtype', 'bf16'], False)):
        eval_davis.main(['--davis_path', str(tmp_path / 'DAVIS'), '--output',
                         str(tmp_path / 'o')] + flags)
        assert captured['amp'] == captured['load_amp'] == amp, flags


# the originals' eval command lines, every flag they have
ORIGINAL_LINES = {
    'eval_davis': ['--model', 'm.pth', '--davis_path', 'D', '--output', 'o', '--split', 'val',
                   '--top', '20', '--amp', '--mem_every', '5', '--include_last'],
    'eval_davis_2016': ['--model', 'm.pth', '--davis_path', 'D', '--output', 'o', '--top', '20',
                        '--amp', '--mem_every', '5'],
    'eval_youtube': ['--model', 'm.pth', '--yv_path', 'Y', '--output', 'o', '--split', 'valid',
                     '--top', '20', '--amp', '--mem_every', '5', '--include_last',
                     '--output_all'],
    'eval_generic': ['--model', 'm.pth', '--data_path', 'G', '--output', 'o', '--top', '20',
                     '--amp_off', '--mem_every', '5', '--include_last'],
}
DEFAULTS = {'top': 20, 'mem_every': 5, 'include_last': False}


@pytest.mark.parametrize('script', sorted(ORIGINAL_LINES))
def test_the_originals_eval_command_lines_parse(script):
    module = {'eval_davis': eval_davis, 'eval_davis_2016': eval_davis_2016,
              'eval_youtube': eval_youtube, 'eval_generic': eval_generic}[script]
    parser = module.build_parser()
    args = parser.parse_args(ORIGINAL_LINES[script])
    assert args.top == 20 and args.mem_every == 5
    defaults = parser.parse_args(['--output', 'o'] + (['--data_path', 'G']
                                                      if script == 'eval_generic' else []))
    for k, v in DEFAULTS.items():
        assert getattr(defaults, k) == v, (script, k)
    assert defaults.amp is False and defaults.amp_dtype == 'fp16'
    if script == 'eval_youtube':
        assert (defaults.split, defaults.yv_path, defaults.output_all, defaults.res,
                defaults.sparse_input) == ('valid', '../YouTube', False, 480, False)
    if script == 'eval_generic':
        assert defaults.amp_off is False and defaults.res == 480


def test_amp_on_a_cpu_without_native_bf16(monkeypatch):
    """eval_generic's default AMP on a CPU without native bf16: fp32, and a note says so."""
    monkeypatch.setattr(precision, 'cpu_native_bf16', lambda: False)
    assert precision.amp_dtype('cpu', 'fp16') is None
    assert 'running in fp32' in precision.amp_note('cpu', 'fp16')


def test_davis_2016_with_stcns_paths(tmp_path, captured):
    """eval_davis_2016.py --davis_path ../DAVIS/2016 (STCN's default) on the downloads as they
    come: the 2016 archive has no ImageSets/2016/val.txt, the 2017 trainval one ships it."""
    davis = tmp_path / 'DAVIS'
    tv = davis_tree(str(davis), videos=('v16', 'v17'), t=2)
    os.makedirs(davis / '2016')
    for part in ('JPEGImages', 'Annotations'):               # the 2017 frames become 2016's
        os.rename(os.path.join(tv, part), davis / '2016' / part)
    os.makedirs(os.path.join(tv, 'ImageSets', '2016'))
    with open(os.path.join(tv, 'ImageSets', '2016', 'val.txt'), 'w') as f:
        f.write('v16\n')
    for path in (davis / '2016', davis):
        eval_davis_2016.main(['--davis_path', str(path), '--output', str(tmp_path / 'o')])
        assert captured['dataset'].videos == ['v16']
