"""End-to-end tests of eval_davis / eval_davis_2016 / eval_youtube / eval_generic on tiny trees.

Frames are small moving rectangles on a noisy background (CPU, random seeded weights): the
tests check files, sizes, palettes, ids, frame sets and equalities, not accuracy.
"""
import contextlib
import io
import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

import eval_davis
import eval_davis_2016
import eval_driver
import eval_generic
import eval_youtube
import eval_youtube_phase2
import inference_core
import video_runner
from dataset.range_transform import im_normalization
from helpers import H, TWO, W, davis_tree, make_scene, write_frames
from inference_core import InferenceConfig, InferenceCore
from util.errors import UserError
from util.image_io import read_frame, read_mask, write_mask
from video_runner import label_tensor

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


# ---------------------------------------------------------------------- fixtures / data

pytestmark = pytest.mark.usefixtures('one_thread')


@pytest.fixture(scope='module')
def cached_load():
    """video_runner.load_model, building each checkpoint's network only once per module."""
    cache = {}

    def load(path, device, amp=False):
        if (path, amp) not in cache:
            cache[path, amp] = video_runner.load_model(path, device, amp)
        return cache[path, amp]
    return load


@pytest.fixture(autouse=True)
def _fast_load(monkeypatch, cached_load):
    monkeypatch.setattr(eval_driver, 'load_model', cached_load)


def png_files(folder):
    return sorted(f[:-4] for f in os.listdir(folder) if f.endswith('.png'))


def custom_palette(seed=3):
    pal = np.random.default_rng(seed).integers(0, 256, (256, 3)).astype(np.uint8)
    pal[0] = 0
    return pal


# ---------------------------------------------------------------------- DAVIS

def test_eval_davis_writes_every_frame_and_matches_core(tmp_path, ckpt, cached_load,
                                                        monkeypatch):
    from model import precision
    monkeypatch.setattr(precision, 'cpu_native_bf16', lambda: False)     # --amp: fp32
    pal = custom_palette()
    tv = davis_tree(str(tmp_path / 'DAVIS'), palette=pal)
    out = str(tmp_path / 'out')
    buf = io.StringIO()     # stdout only: progressbar keeps the stderr it saw at import
    with contextlib.redirect_stdout(buf):
        stats = eval_davis.main(['--model', ckpt, '--davis_path', str(tmp_path / 'DAVIS'),
                                 '--output', out, '--amp', '--evaluate', '--device', 'cpu'])
    printed = buf.getvalue()
    assert 'FPS' in printed and 'no native bf16' in printed
    assert stats['frames'] == 6 and stats['written'] == 6
    names = [f'{i:05d}' for i in range(6)]
    assert png_files(os.path.join(out, 'vid_a')) == names
    for name in ('global_results-val.csv', 'per-sequence_results-val.csv'):
        assert os.path.isfile(os.path.join(out, name))

    # the same propagation run directly through InferenceCore
    img_dir = os.path.join(tv, 'JPEGImages', '480p', 'vid_a')
    raw = torch.stack([torch.from_numpy(read_frame(os.path.join(img_dir, n + '.jpg')).copy())
                       .permute(2, 0, 1).float() / 255 for n in names])
    first = read_mask(os.path.join(tv, 'Annotations', '480p', 'vid_a', '00000.png'))
    core = InferenceCore(cached_load(ckpt, 'cpu'), im_normalization(raw)[None], 2,
                         InferenceConfig(top_k=20, mem_every=5))
    core.interact(label_tensor(first, 2), 0, 6)
    for i, n in enumerate(names):
        img = Image.open(os.path.join(out, 'vid_a', n + '.png'))
        assert img.mode == 'P' and img.size == (W, H)
        assert np.array_equal(np.asarray(img.getpalette()[:768], np.uint8), pal.reshape(-1))
        assert np.array_equal(np.asarray(img), core.get_mask(i))
    assert np.array_equal(read_mask(os.path.join(out, 'vid_a', '00000.png')), first)


def test_eval_davis_2016_single_object(tmp_path, ckpt):
    root = tmp_path / 'DAVIS' / '2016'
    frames, masks = make_scene(4, TWO)
    names = [f'{i:05d}' for i in range(4)]
    write_frames(str(root / 'JPEGImages' / '480p' / 'v16'), names, frames)
    # DAVIS 2016 ground truth is 0/255 grayscale: every id > 0 is the one object
    os.makedirs(root / 'Annotations' / '480p' / 'v16')
    for n, m in zip(names, masks):
        Image.fromarray(np.where(m > 0, 255, 0).astype(np.uint8), 'L').save(
            root / 'Annotations' / '480p' / 'v16' / (n + '.png'))
    os.makedirs(root / 'ImageSets' / '2016')
    (root / 'ImageSets' / '2016' / 'val.txt').write_text('v16\n')
    out = tmp_path / 'out16'
    stats = eval_davis_2016.main(['--model', ckpt, '--davis_path', str(tmp_path / 'DAVIS'),
                                  '--output', str(out), '--evaluate'])
    assert [o['Sequence'] for o in stats['results']['per_object']] == ['v16_1']
    assert (out / 'global_results-val.csv').is_file()
    assert png_files(out / 'v16') == names
    first = read_mask(str(out / 'v16' / '00000.png'))
    assert np.array_equal(first, (masks[0] > 0).astype(np.uint8))
    for n in names:
        assert set(np.unique(read_mask(str(out / 'v16' / (n + '.png'))))) <= {0, 1}


# ---------------------------------------------------------------------- YouTube-VOS

LATE = {1: (1, (4, 4), (1, 2), (20, 26)), 3: (3, (34, 50), (1, -2), (18, 24))}


def youtube_tree(root):
    """valid: 8 listed frames 00000..00014 (step 2) of a 15-frame video; object 1 labeled on
    00002, object 3 enters on 00006; meta.json leaves out 00010."""
    frames, masks = make_scene(15, {1: (2, (4, 4), (1, 1), (20, 26)),
                                    3: (6, (34, 50), (0, -1), (18, 24))}, h=64, w=96)
    all_names = [f'{i:05d}' for i in range(15)]
    listed = all_names[::2]
    write_frames(os.path.join(root, 'all_frames', 'valid_all_frames', 'JPEGImages', 'v'),
                 all_names, frames)
    write_frames(os.path.join(root, 'valid', 'JPEGImages', 'v'), listed, frames[::2])
    ann = os.path.join(root, 'valid', 'Annotations', 'v')
    write_mask(os.path.join(ann, '00002.png'), np.where(masks[2] == 1, 1, 0))
    write_mask(os.path.join(ann, '00006.png'), np.where(masks[6] == 3, 3, 0))
    meta = {'videos': {'v': {'objects': {
        '1': {'category': 'a', 'frames': [n for n in listed[1:] if n != '00010']},
        '3': {'category': 'b', 'frames': [n for n in listed[3:] if n != '00010']}}}}}
    with open(os.path.join(root, 'valid', 'meta.json'), 'w') as f:
        json.dump(meta, f)
    return masks


def test_eval_youtube_late_object_and_meta_frames(tmp_path, ckpt):
    root = str(tmp_path / 'YouTube')
    masks = youtube_tree(root)
    out = str(tmp_path / 'yv')
    eval_youtube.main(['--model', ckpt, '--yv_path', root, '--output', out, '--res', '-1',
                       '--zip'])
    folder = os.path.join(out, 'Annotations', 'v')
    expect = ['00002', '00004', '00006', '00008', '00012', '00014']   # meta, from the label on
    assert png_files(folder) == expect
    for n in expect:
        m = read_mask(os.path.join(folder, n + '.png'))
        assert m.shape == (64, 96) and set(np.unique(m)) <= {0, 1, 3}
        if n < '00006':
            assert 3 not in m
    assert np.array_equal(read_mask(os.path.join(folder, '00006.png')) == 3, masks[6] == 3)
    assert np.array_equal(read_mask(os.path.join(folder, '00002.png')), masks[2])
    with zipfile.ZipFile(out + '.zip') as z:
        assert sorted(z.namelist()) == [f'Annotations/v/{n}.png' for n in expect]

    # --output_all: every frame of all_frames from the first label on, working size 32 x 48
    out_all = str(tmp_path / 'yv_all')
    eval_youtube.main(['--model', ckpt, '--yv_path', root, '--output', out_all, '--res', '32',
                       '--output_all', '--mem_every', '3'])
    folder = os.path.join(out_all, 'Annotations', 'v')
    assert png_files(folder) == [f'{i:05d}' for i in range(2, 15)]
    for i in range(2, 15):
        m = read_mask(os.path.join(folder, f'{i:05d}.png'))
        assert m.shape == (64, 96) and set(np.unique(m)) <= {0, 1, 3}
        if i < 6:
            assert 3 not in m


# ---------------------------------------------------------------------- intermediate inference

def intermediate_tree(root):
    """Video A (8 frames, step 5) labeled on 00010 (object 1) and 00025 (objects 1, 2; object 2
    enters on frame 4); video B is A reversed in time with the mirrored labels."""
    frames, masks = make_scene(8, {1: (0, (4, 4), (2, 3), (18, 24)),
                                   2: (4, (34, 50), (1, -3), (18, 22))})
    names = [f'{5 * i:05d}' for i in range(8)]
    labeled = {'A': [2, 5], 'B': [2, 5]}
    trees = {'A': (frames, masks), 'B': (frames[::-1], masks[::-1])}
    ann = os.path.join(root, 'train_480p', 'Annotations')
    sparse = os.path.join(root, 'phase2', 'yv_gt_480p')
    for v, (fr, ms) in trees.items():
        write_frames(os.path.join(root, 'train_480p', 'JPEGImages', v), names, fr)
        for i, (n, m) in enumerate(zip(names, ms)):
            if i in labeled[v]:
                write_mask(os.path.join(ann, v, n + '.png'), m)
                write_mask(os.path.join(sparse, v, n + '.png'), m)
            else:   # unlabeled frames must never be opened: make them unreadable
                os.makedirs(os.path.join(ann, v), exist_ok=True)
                with open(os.path.join(ann, v, n + '.png'), 'wb') as f:
                    f.write(b'not a png')
    split = os.path.join(root, 'yv_rand_2frames.json')
    with open(split, 'w') as f:
        json.dump({v: [names[i] + '.jpg' for i in idx] for v, idx in labeled.items()}, f)
    return names, masks, sparse, split


def test_four_intermediate_passes(tmp_path, ckpt):
    root = str(tmp_path / 'YouTube')
    names, masks, sparse, split = intermediate_tree(root)
    passes = {'left': [], 'leftsecgt': ['--only_sec_gt', '--data_file', split],
              'right': ['--reverse'], 'rightsecgt': ['--reverse', '--only_sec_gt']}
    expect = {'left': range(2, 8), 'leftsecgt': range(5, 8), 'right': range(0, 6),
              'rightsecgt': range(0, 3)}
    gt_frames = {'left': (2, 5), 'leftsecgt': (5,), 'right': (2, 5), 'rightsecgt': (2,)}
    outs = {}
    for name, flags in passes.items():
        outs[name] = str(tmp_path / name)
        if '--data_file' not in flags:
            flags = flags + ['--data_file', sparse]
        eval_youtube_phase2.main(['--model', ckpt, '--yv_path', root, '--output', outs[name],
                                  '--res', '-1'] + flags)
        folder = os.path.join(outs[name], 'Annotations', 'A')
        assert png_files(folder) == [names[i] for i in expect[name]], name
        for i in gt_frames[name]:
            assert np.array_equal(read_mask(os.path.join(folder, names[i] + '.png')),
                                  masks[i]), (name, i)
        for i in expect[name]:
            assert set(np.unique(read_mask(os.path.join(folder, names[i] + '.png')))) <= {0, 1, 2}
    # left pass: object 2 is labeled only on frame 5, so it cannot appear on frames 2..4
    for i in (2, 3, 4):
        assert 2 not in read_mask(os.path.join(outs['left'], 'Annotations', 'A',
                                               names[i] + '.png'))
    # a reversed pass on A equals the forward pass on B = A reversed in time (mirrored)
    for i in expect['right']:
        a = read_mask(os.path.join(outs['right'], 'Annotations', 'A', names[i] + '.png'))
        b = read_mask(os.path.join(outs['left'], 'Annotations', 'B', names[7 - i] + '.png'))
        assert np.array_equal(a, b), i
    # the four trees are what the merge step consumes
    from phase2.merge import merge
    merge(sparse, outs['left'], outs['leftsecgt'], outs['right'], outs['rightsecgt'],
          str(tmp_path / 'merged'), progress=False)
    assert png_files(str(tmp_path / 'merged' / 'Annotations' / 'A')) == names


def test_youtube_mode_and_defaults(tmp_path, monkeypatch):
    seen = {}

    def fake_run(net, dataset, out_dir, config, **kw):
        seen.update(vars(config), **kw, dataset=dataset, out_dir=out_dir)
        return {}
    monkeypatch.setattr(eval_driver, 'run_dataset', fake_run)
    monkeypatch.setattr(eval_driver, 'load_model', lambda path, device, amp=False: None)
    root = str(tmp_path / 'YouTube')
    names, masks, sparse, split = intermediate_tree(root)
    youtube_tree(root)
    eval_youtube.main(['--yv_path', root, '--output', 'o1'])
    assert (seen['mem_style'], seen['mem_every']) == ('youtube', 5)
    assert type(seen['dataset']).__name__ == 'YouTubeVOSTestDataset'
    assert seen['out_dir'] == os.path.join('o1', 'Annotations')
    eval_youtube_phase2.main(['--yv_path', root, '--output', 'o2', '--reverse', '--res', '-1'])
    assert (seen['mem_style'], seen['mem_every']) == ('youtube', 1)
    assert seen['dataset'].reverse and seen['dataset'].videos == ['A', 'B']
    tv = davis_tree(str(tmp_path / 'DAVIS'))
    os.makedirs(os.path.join(tmp_path, 'DAVIS', '2017', 'phase2', 'davis_gt', 'vid_a'))
    write_mask(os.path.join(tmp_path, 'DAVIS', '2017', 'phase2', 'davis_gt', 'vid_a',
                            '00003.png'), read_mask(os.path.join(tv, 'Annotations', '480p',
                                                                 'vid_a', '00003.png')))
    for davis_path in (tmp_path / 'DAVIS', tmp_path / 'DAVIS' / '2017'):   # both spellings
        eval_youtube_phase2.main(['--davis', '--davis_path', str(davis_path), '--output', 'o3',
                                  '--mem_every', '5'])          # as the original's DAVIS scripts
        assert (seen['mem_style'], seen['mem_every']) == ('youtube', 5)
        video = seen['dataset'][0]
        assert [lab.index for lab in video.labels] == [3] and video.size == (H, W)
        assert tuple(video.images.shape[-2:]) == (H, W)      # DAVIS: as stored, not --res 480


@pytest.mark.parametrize('flags, command', [
    (['--data_file', 'x'], 'eval_youtube_phase2.py'),
    (['--reverse'], 'eval_youtube_phase2.py'),
    (['--only_sec_gt'], 'eval_youtube_phase2.py'),
    (['--davis', '--davis_path', 'd'], 'eval_youtube_phase2.py'),
    (['--bank', '--davis'], 'eval_youtube_bank.py'),
])
def test_eval_youtube_is_the_benchmark_only(flags, command):
    """eval_youtube.py given a flag of the phase-2 commands names the command to use."""
    with pytest.raises(UserError, match=f'is not a flag of eval_youtube.py .*: use {command}$'):
        eval_youtube.main(['--output', 'o'] + flags)


def test_eval_youtube_phase2_flag_exits_2_with_one_line(tmp_path):
    r = subprocess.run([sys.executable, 'eval_youtube.py', '--output', str(tmp_path / 'o'),
                        '--bank'], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 2 and r.stdout == ''
    assert r.stderr.strip().splitlines() == [
        'error: --bank is not a flag of eval_youtube.py (the YouTube-VOS benchmark): use '
        'eval_youtube_bank.py']
    assert not (tmp_path / 'o').exists()


# ---------------------------------------------------------------------- generic

def test_eval_generic(tmp_path, ckpt):
    frames, masks = make_scene(5, {5: (0, (4, 4), (2, 3), (18, 24)),
                                   9: (2, (34, 50), (1, -3), (18, 22))})
    names = [f'f{i}' for i in range(5)]
    write_frames(str(tmp_path / 'data' / 'JPEGImages' / 'clip'), names, frames)
    pal = custom_palette(7)
    ann = tmp_path / 'data' / 'Annotations' / 'clip'
    write_mask(str(ann / 'f0.png'), np.where(masks[0] == 5, 5, 0), pal)
    write_mask(str(ann / 'f2.png'), np.where(masks[2] == 9, 9, 0), pal)
    out = tmp_path / 'gen'
    eval_generic.main(['--model', ckpt, '--data_path', str(tmp_path / 'data'),
                       '--output', str(out), '--res', '-1', '--amp_off'])
    assert png_files(out / 'clip') == names
    for i, n in enumerate(names):
        img = Image.open(out / 'clip' / (n + '.png'))
        assert np.array_equal(np.asarray(img.getpalette()[:768], np.uint8), pal.reshape(-1))
        m = np.asarray(img)
        assert set(np.unique(m)) <= {0, 5, 9} and (i >= 2 or 9 not in m)
    assert np.array_equal(np.asarray(Image.open(out / 'clip' / 'f2.png')) == 9, masks[2] == 9)


@pytest.mark.parametrize('script', ['davis', 'youtube', 'generic'])
def test_exact_readout_flag_reaches_the_core(tmp_path, ckpt, monkeypatch, script):
    """--exact_readout selects the dense readout (bitwise the original's: see
    tests/commands/test_bench_equivalence.py); without it the gathered one runs."""
    calls = []
    for name in ('dense_topk_readout', 'topk_readout'):
        real = getattr(inference_core, name)
        monkeypatch.setattr(inference_core, name,
                            lambda *a, _n=name, _r=real, **k: calls.append(_n) or _r(*a, **k))
    if script == 'davis':
        tv = davis_tree(str(tmp_path / 'DAVIS'), t=4)
        main, args = eval_davis.main, ['--davis_path', os.path.dirname(os.path.dirname(tv))]
    elif script == 'youtube':
        _, _, sparse, _ = intermediate_tree(str(tmp_path / 'YouTube'))
        main, args = eval_youtube_phase2.main, ['--yv_path', str(tmp_path / 'YouTube'),
                                                '--res', '-1', '--data_file', sparse]
    else:
        frames, masks = make_scene(4, TWO)
        write_frames(str(tmp_path / 'data' / 'JPEGImages' / 'clip'), list('abcd'), frames)
        write_mask(str(tmp_path / 'data' / 'Annotations' / 'clip' / 'a.png'), masks[0])
        main, args = eval_generic.main, ['--data_path', str(tmp_path / 'data'), '--res', '-1',
                                         '--amp_off']
    outs = []
    for flags in ([], ['--exact_readout']):
        calls.clear()
        outs.append(str(tmp_path / f'out{len(flags)}'))
        main(['--model', ckpt, '--output', outs[-1]] + args + flags)
        assert calls and set(calls) == ({'dense_topk_readout'} if flags else {'topk_readout'})
    written = [sorted(os.path.relpath(os.path.join(d, f), o) for d, _, fs in os.walk(o)
                      for f in fs) for o in outs]
    assert written[0] == written[1] and written[0]


# ---------------------------------------------------------------------- bad input

def test_bad_input_names_the_file(tmp_path, ckpt):
    davis = str(tmp_path / 'DAVIS')
    tv = davis_tree(davis, videos=('vid_a', 'vid_b'))
    # a mask whose size differs from its frame
    bad = os.path.join(tv, 'Annotations', '480p', 'vid_b', '00000.png')
    write_mask(bad, np.zeros((H - 10, W), np.uint8) + 1)
    with pytest.raises(UserError, match='vid_b/00000.png: mask size 90x50 differs'):
        eval_davis.main(['--model', ckpt, '--davis_path', davis, '--output',
                         str(tmp_path / 'o')])
    # a video in the image set whose frame folder is missing
    frames_b = os.path.join(tv, 'JPEGImages', '480p', 'vid_b')
    os.rename(frames_b, frames_b + '_gone')
    with pytest.raises(UserError, match='vid_b'):
        eval_davis.main(['--model', ckpt, '--davis_path', davis, '--output',
                         str(tmp_path / 'o')])
    # a sparse-label video without frames
    yv = tmp_path / 'YouTube'
    os.makedirs(yv / 'train_480p' / 'JPEGImages')
    write_mask(str(yv / 'phase2' / 'yv_gt_480p' / 'ghost' / '00000.png'), np.ones((4, 4)))
    with pytest.raises(UserError, match='ghost'):
        eval_youtube_phase2.main(['--model', ckpt, '--yv_path', str(yv), '--output',
                                  str(tmp_path / 'o'), '--reverse', '--res', '-1'])
    # the command line: exit status 2 and one line naming the file
    r = subprocess.run([sys.executable, 'eval_davis.py', '--model', ckpt, '--davis_path',
                        davis, '--output', str(tmp_path / 'o')], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('error: ') and frames_b in lines[0]


# ---------------------------------------------------------------------- a new dataset

def test_a_new_dataset_is_a_class_and_a_short_script(tmp_path, ckpt):
    """docs/design.md, "Evaluation": a dataset class (here: <root>/<video>/*.jpg, the label of
    frame 0 in <root>/<video>.png, every other frame written) and the driver make a command;
    its output_frames is what is written and what --resume checks."""
    from dataset.eval_dataset import EvalDataset, build_video, load_frames, load_mask
    from util.image_io import get_palette
    from util.layout import list_frames, stem

    class EveryOther(EvalDataset):
        def __init__(self, root):
            self.image_dir = root
            self.videos = sorted(d for d in os.listdir(root) if os.path.isdir(root / d))
            self.inputs = [('frame folder', root)]

        def output_frames(self, name):
            return self.frame_stems(name)[::2]

        def load(self, name):
            folder = self.image_dir / name
            names = list_frames(folder)
            images, size = load_frames(folder, names, headers_only=self.headers_only)
            label = str(self.image_dir / f'{name}.png')
            stems = [stem(n) for n in names]
            return build_video(name, images, stems, size, get_palette(label),
                               [(0, load_mask(label, size, images.shape[-2:]))], complete=True,
                               outputs=self.output_indices(name, stems))

    root = tmp_path / 'mine'
    for v, seed in (('p', 1), ('q', 2)):
        frames, masks = make_scene(5, TWO, seed=seed)
        write_frames(str(root / v), [f'{i:03d}' for i in range(5)], frames)
        write_mask(str(root / f'{v}.png'), masks[0])
    out = tmp_path / 'out'

    def command(*flags):
        args = eval_driver.parser('mine').parse_args(['--model', ckpt, '--output', str(out),
                                                      *flags])
        eval_driver.check_flags(args)
        return eval_driver.run(args, EveryOther(root), args.output, mem_style='davis')
    stats = command()
    assert stats['written'] == 6 and stats['skipped'] == 0
    assert png_files(out / 'p') == png_files(out / 'q') == ['000', '002', '004']
    os.remove(out / 'q' / '002.png')
    stats = command('--resume')
    assert (stats['skipped'], stats['videos'], stats['written']) == (1, 1, 3)
    assert png_files(out / 'q') == ['000', '002', '004']
