"""Bad input: every case ends in one UserError line naming the file and the problem, exit
status 2 on the command line (no traceback unless --debug), and nothing half-written.

Most cases call `main(argv)` of a script in-process (fast); a few run the command line.
Data: tiny synthetic DAVIS / YouTube trees (scripts.data.synthetic_data), copied per test.
"""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import eval_davis
import eval_generic
import eval_youtube
import eval_youtube_phase2
import train
from helpers import davis_args
from phase2.merge import PASS_NAMES
from phase2_scripts import merge_left_right, prepare_sparse_gt
from scripts import evaluate as jf
from util.errors import UserError, one_line
from util.image_io import DAVIS_PALETTE, read_mask, write_mask

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
H, W = 32, 48


# ---------------------------------------------------------------------- fixtures

pytestmark = pytest.mark.usefixtures('one_thread')


def expect(fn, argv, *fragments):
    """fn(argv) must raise a UserError whose one-line message holds every fragment."""
    with pytest.raises(UserError) as e:
        fn([str(a) for a in argv])
    msg = one_line(e.value)
    print(f'[{fn.__module__}] error: {msg}')          # the report lists these (pytest -s)
    for f in fragments:
        assert str(f) in msg, (f, msg)
    assert '\n' not in msg
    return msg


def tree_files(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob('*')) if folder.exists() \
        else []


def no_run(d):
    """Nothing under --save_root (the root itself may have been created empty)."""
    return not d['save'].exists() or not os.listdir(d['save'])


def train_flags(d, *extra, two_shot=False):
    f = ['--stage', '3', '--crop_size', '32', '-b', '1', '--num_workers', '0', '-i', '2',
         '--davis_root', d['davis'], '--yv_root', d['yv'], '--save_root', d['save'],
         '--log_every', '1', '--yv_subset', 'none', '--davis_subset', 'none']
    if two_shot:
        f += ['--davis_data', d['d_split'], '--yv_data', d['y_split']]
    return f + list(extra)


def truncate(path, keep=0.5):
    raw = open(path, 'rb').read()
    with open(path, 'wb') as f:
        f.write(raw[:int(len(raw) * keep)])


def labeled_masks(d):
    """Paths of every labeled mask of the two splits."""
    out = []
    for split, gt in ((d['d_split'], d['d_gt']), (d['y_split'], d['y_gt'])):
        for v, names in json.load(open(split)).items():
            out += [gt / v / n.replace('.jpg', '.png') for n in names]
    return out


# ---------------------------------------------------------------------- missing folders

def test_missing_frame_folder(data, fast_load):
    d = data
    gone = d['d_im'] / 'davis_001'
    shutil.rmtree(gone)
    out = d['tmp'] / 'out'
    expect(eval_davis.main, davis_args(d, out), 'val.txt', "video 'davis_001' has no frame "
           'folder', gone)
    assert not out.exists()
    shutil.rmtree(d['d_im'])
    expect(train.main, train_flags(d), 'train.txt', "video 'davis_000' has no frame folder",
           d['d_im'])
    assert no_run(d)


def test_missing_mask_folder(data, fast_load):
    d = data
    # generic layout: a video without its annotation folder
    gen = d['tmp'] / 'generic'
    shutil.copytree(d['d_im'], gen / 'JPEGImages')
    shutil.copytree(d['d_gt'], gen / 'Annotations')
    shutil.rmtree(gen / 'Annotations' / 'davis_001')
    expect(eval_generic.main, ['--model', 'x', '--data_path', gen, '--output',
                               d['tmp'] / 'o'], gen / 'Annotations' / 'davis_001',
           'annotation folder of this video not found')
    # training (full supervision): a listed video whose mask folder is missing
    shutil.rmtree(d['d_gt'] / 'davis_000')
    expect(train.main, train_flags(d), d['d_gt'] / 'davis_000',
           "mask folder of video 'davis_000' not found")
    assert not (d['tmp'] / 'o').exists() and no_run(d)


# ---------------------------------------------------------------------- sizes, corrupt files

def test_mask_size_differs_from_frame(data, fast_load):
    d = data
    bad = d['d_gt'] / 'davis_001' / '00000.png'
    write_mask(bad, np.ones((H - 4, W), np.uint8))
    out = d['tmp'] / 'out'
    expect(eval_davis.main, davis_args(d, out), bad, f'mask size {W}x{H - 4} differs from its '
           f'frame ({W}x{H})')
    assert not out.exists()
    # training: every labeled mask of the split the wrong size -> the first sample fails
    for p in labeled_masks(d):
        write_mask(p, np.ones((H, W + 8), np.uint8))
    msg = expect(train.main, train_flags(d, two_shot=True), 'differs from its frame',
                 f'mask size {W + 8}x{H}')
    assert '.png' in msg
    assert no_run(d)                           # the run folder of the failed start is removed


def test_truncated_jpeg_and_corrupt_png(data, pristine, fast_load):
    d = data
    frame = d['d_im'] / 'davis_001' / '00002.jpg'
    truncate(frame)
    out = d['tmp'] / 'out'
    expect(eval_davis.main, davis_args(d, out), frame, 'cannot read image', 'truncated')
    assert not out.exists()
    shutil.copy(pristine / frame.relative_to(d['root']), frame)        # repaired
    png = d['d_gt'] / 'davis_001' / '00000.png'
    png.write_bytes(b'\x89PNG\r\n\x1a\n' + os.urandom(200))
    expect(eval_davis.main, davis_args(d, out), png, 'cannot read image')
    assert not out.exists()


def test_nothing_sets_load_truncated_images():
    """A truncated image must fail: no project module may switch PIL's global flag on."""
    from PIL import ImageFile
    import dataset.davis_test_dataset  # noqa: F401
    import dataset.generic_test_dataset  # noqa: F401
    import dataset.yv_test_dataset  # noqa: F401
    import phase2.passes_dataset  # noqa: F401
    import dataset.vos_dataset  # noqa: F401
    import model.trainer  # noqa: F401
    import scripts.data.check_dataset  # noqa: F401
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    offenders = []
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [x for x in dirs if not x.startswith('.') and x != 'tests']
        for f in files:
            if f.endswith('.py'):
                text = open(os.path.join(folder, f), encoding='utf-8').read()
                if 'LOAD_TRUNCATED_IMAGES = True' in text or 'LOAD_TRUNCATED_IMAGES=True' in text:
                    offenders.append(f)
    assert not offenders
    # and util.files turns it back off if a third-party library switched it on
    from util.image_io import read_frame
    ImageFile.LOAD_TRUNCATED_IMAGES = True
    try:
        with pytest.warns(RuntimeWarning, match='LOAD_TRUNCATED_IMAGES'):
            with pytest.raises(UserError):
                read_frame('/nonexistent/x.jpg')
        assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = False


# ---------------------------------------------------------------------- RGB masks

def test_rgb_mask_accepted_when_unambiguous_else_explained(data, fast_load):
    d = data
    ann = d['d_gt'] / 'davis_001' / '00000.png'
    ids = read_mask(ann)
    assert len(np.unique(ids)) >= 2
    out_p, out_rgb = d['tmp'] / 'palette', d['tmp'] / 'rgb'
    eval_davis.main(davis_args(d, out_p))
    Image.fromarray(DAVIS_PALETTE[ids]).save(ann)              # the same ids as RGB colours
    assert Image.open(ann).mode == 'RGB'
    eval_davis.main(davis_args(d, out_rgb))
    names = sorted(os.listdir(out_p / 'davis_001'))
    assert names == sorted(os.listdir(out_rgb / 'davis_001')) and len(names) == 4
    for n in names:
        assert np.array_equal(read_mask(out_p / 'davis_001' / n),
                              read_mask(out_rgb / 'davis_001' / n))
    # a colour outside the palette cannot be mapped to an id: explained, nothing written
    rgb = DAVIS_PALETTE[ids].copy()
    rgb[:3, :3] = (12, 200, 77)
    Image.fromarray(rgb).save(ann)
    out_bad = d['tmp'] / 'bad'
    expect(eval_davis.main, davis_args(d, out_bad), ann, 'RGB mask with colour (12, 200, 77)',
           'not in the palette', '8-bit palette PNG')
    assert not out_bad.exists()
    # the sparse-label tool reads the labeled masks too
    v, names = next(iter(json.load(open(d['d_split'])).items()))
    lab = d['d_gt'] / v / names[0].replace('.jpg', '.png')
    rgb = DAVIS_PALETTE[read_mask(lab)].copy()
    rgb[0, 0] = (1, 2, 3)
    Image.fromarray(rgb).save(lab)
    expect(prepare_sparse_gt.main, ['--annotations', d['d_gt'], '--split', d['d_split'],
                                    '--out', d['tmp'] / 'sparse'], lab, 'not in the palette')
    assert not (d['tmp'] / 'sparse').exists()


# ---------------------------------------------------------------------- split JSONs

def _with_split(d, key, content):
    path = d['tmp'] / f'{key}_split.json'
    path.write_text(json.dumps(content))
    return str(path)


def test_split_names_missing_video(data, fast_load):
    d = data
    split = json.load(open(d['y_split']))
    split['ghost'] = ['00000.jpg', '00005.jpg']
    bad = _with_split(d, 'yv', split)
    flags = train_flags(d, two_shot=True)
    flags[flags.index(d['y_split'])] = bad
    expect(train.main, flags, bad, "video 'ghost' has no frame folder", d['y_im'] / 'ghost')
    expect(prepare_sparse_gt.main, ['--annotations', d['y_gt'], '--split', bad, '--out',
                                    d['tmp'] / 'sparse'], bad, "video 'ghost' has no folder")
    expect(eval_youtube_phase2.main, ['--model', 'x', '--yv_path', d['yv'], '--res', '-1',
                                      '--output', d['tmp'] / 'o', '--data_file', bad], bad,
           "video 'ghost' has no frame folder")
    assert not (d['tmp'] / 'sparse').exists() and not (d['tmp'] / 'o').exists()
    assert no_run(d)


def test_split_names_missing_frame(data, fast_load):
    d = data
    split = json.load(open(d['y_split']))
    v = next(iter(split))
    split[v] = [split[v][0], '00095.jpg']
    bad = _with_split(d, 'yv', split)
    flags = train_flags(d, two_shot=True)
    flags[flags.index(d['y_split'])] = bad
    expect(train.main, flags, bad, f"video '{v}': labeled frame '00095' has no image")
    expect(prepare_sparse_gt.main, ['--annotations', d['y_gt'], '--split', bad, '--out',
                                    d['tmp'] / 'sparse'], bad, "frame '00095.jpg'",
           'missing mask')
    expect(eval_youtube_phase2.main, ['--model', 'x', '--yv_path', d['yv'], '--res', '-1',
                                      '--output', d['tmp'] / 'o', '--data_file', bad], bad,
           "labeled frame '00095' has no image")
    # a frame with an image but no mask
    split[v] = [split[v][0], '00010.jpg']
    os.remove(d['y_gt'] / v / '00010.png')
    bad = _with_split(d, 'yv2', split)
    flags[flags.index(str(d['tmp'] / 'yv_split.json'))] = bad
    expect(train.main, flags, bad, "labeled frame '00010' has no mask",
           d['y_gt'] / v / '00010.png')
    expect(eval_youtube_phase2.main, ['--model', 'x', '--yv_path', d['yv'], '--res', '-1',
                                      '--output', d['tmp'] / 'o', '--data_file', bad], bad,
           "labeled frame '00010' has no mask")
    assert not (d['tmp'] / 'sparse').exists() and not (d['tmp'] / 'o').exists()


# ---------------------------------------------------------------------- empty labels

def test_labeled_frame_with_no_object(data, fast_load):
    d = data
    first = d['d_gt'] / 'davis_001' / '00000.png'
    write_mask(first, np.zeros((H, W), np.uint8))
    out = d['tmp'] / 'out'
    expect(eval_davis.main, davis_args(d, out), first, 'first-frame annotation holds no object')
    assert not out.exists()
    for p in labeled_masks(d):
        write_mask(p, np.zeros((H, W), np.uint8))
    expect(prepare_sparse_gt.main, ['--annotations', d['d_gt'], '--split', d['d_split'],
                                    '--out', d['tmp'] / 'sparse'], 'holds no object',
           d['d_split'])
    assert not (d['tmp'] / 'sparse').exists()
    msg = expect(train.main, train_flags(d, two_shot=True), 'holds no object',
                 'labeled frame of')
    assert '.png' in msg and ('davis_rand_2frames.json' in msg or 'yv_rand_2frames.json' in msg)
    assert no_run(d)
    # a generic video whose only label is empty
    gen = d['tmp'] / 'generic'
    os.makedirs(gen / 'Annotations' / 'v')
    shutil.copytree(d['d_im'] / 'davis_000', gen / 'JPEGImages' / 'v')
    write_mask(gen / 'Annotations' / 'v' / '00000.png', np.zeros((H, W), np.uint8))
    expect(eval_generic.main, ['--model', 'x', '--data_path', gen, '--output', d['tmp'] / 'g'],
           gen / 'Annotations' / 'v', 'no labeled frame with an object')


# ---------------------------------------------------------------------- checkpoints

def test_checkpoint_of_the_wrong_architecture(data):
    import torchvision
    d = data
    bad = d['tmp'] / 'resnet18.pth'
    torch.save(torchvision.models.resnet18().state_dict(), bad)
    out = d['tmp'] / 'out'
    expect(eval_davis.main, davis_args(d, out, model=bad), bad,
           'does not fit model.eval_network.STCN', 'missing keys', 'unexpected keys')
    assert not out.exists()
    expect(train.main, train_flags(d, '--load_network', bad), bad,
           'does not fit model.network.STCN')
    # plain weights given as a resume checkpoint
    plain = d['tmp'] / 'plain.pth'
    torch.save({'key_proj.weight': torch.zeros(1)}, plain)
    expect(train.main, train_flags(d, '--load_model', plain), plain,
           'not a resume checkpoint')
    # a truncated checkpoint file
    cut = d['tmp'] / 'cut.pth'
    shutil.copy(bad, cut)
    truncate(cut, 0.3)
    expect(eval_davis.main, davis_args(d, out, model=cut), cut, 'cannot read checkpoint')
    assert not out.exists() and no_run(d)


# ---------------------------------------------------------------------- outputs

def test_output_folder_not_writable(data, fast_load):
    d = data
    blocker = d['tmp'] / 'a_file'
    blocker.write_text('not a folder')
    under_file = blocker / 'sub'
    expect(eval_davis.main, davis_args(d, under_file), under_file,
           'output folder (--output) is not writable (Not a directory)')
    expect(eval_davis.main, davis_args(d, '/proc/stcn_out'), '/proc/stcn_out',
           'is not writable')
    gen = d['tmp'] / 'generic'
    shutil.copytree(d['d_im'], gen / 'JPEGImages')
    shutil.copytree(d['d_gt'], gen / 'Annotations')
    expect(eval_generic.main, ['--model', 'x', '--data_path', gen, '--output', under_file],
           under_file, 'is not writable')
    expect(eval_youtube_phase2.main, ['--model', 'x', '--yv_path', d['yv'], '--res', '-1',
                                      '--output', under_file, '--data_file', d['y_split']],
           under_file / 'Annotations', 'is not writable (Not a directory)')
    expect(train.main, train_flags(d, '--save_root', under_file), under_file,
           'run folder root (--save_root) is not writable (Not a directory)')
    expect(prepare_sparse_gt.main, ['--annotations', d['d_gt'], '--split', d['d_split'],
                                    '--out', under_file], under_file, 'is not writable')
    passes = d['tmp'] / 'pass'
    for name in PASS_NAMES:
        shutil.copytree(d['y_gt'], passes / name)
    sparse = d['yv'] + '/phase2/yv_gt_480p'
    expect(merge_left_right.main, ['--gt_dir', sparse, '--left', passes / 'left',
                                   '--leftsecgt', passes / 'leftsecgt', '--right',
                                   passes / 'right', '--rightsecgt', passes / 'rightsecgt',
                                   '--out', under_file], under_file, 'is not writable')
    expect(jf.main, ['--gt_path', d['d_gt'], '--pred_path', d['d_gt'], '--out', under_file],
           under_file, 'is not writable')
    assert blocker.read_text() == 'not a folder'


# ---------------------------------------------------------------------- flags

TRAIN_FLAG_CASES = [
    (['--phase2_train', '0'], '--phase2_train is set but neither --phase2_yv nor '
                              '--phase2_davis'),
    (['--semi'], '--semi needs the labeled-frame splits'),
    (['--phase2_train', '0', '--phase2_davis', 'bank', '--update_pseudo_bank', '5',
      '--phase2_train', '-1'], '--phase2_yv / --phase2_davis name a pseudo-label bank but '
                               'phase 2 is off'),
    (['--update_pseudo_bank', '0'], '--update_pseudo_bank needs phase 2'),
    (['--stage', '0', '--semi'], '--stage 0: two-shot / --semi / --phase2_* flags need'),
]


@pytest.mark.parametrize('flags,fragment', TRAIN_FLAG_CASES)
def test_inconsistent_train_flags(data, flags, fragment):
    d = data
    expect(train.main, train_flags(d, *flags), fragment)
    assert not d['save'].exists()


def test_inconsistent_eval_flags(data):
    d = data
    expect(eval_davis.main, davis_args(d, d['tmp'] / 'o', '--evaluate', '--split', 'testdev'),
           '--evaluate: test-dev has no public annotations')
    expect(eval_youtube.main, ['--yv_path', d['yv'], '--output', d['tmp'] / 'o',
                               '--reverse'], '--reverse is not a flag of eval_youtube.py')
    assert not (d['tmp'] / 'o').exists()


# ---------------------------------------------------------------------- command lines

def _cli(args, timeout=240):
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONUNBUFFERED='1')
    return subprocess.run([sys.executable] + [str(a) for a in args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_cli_one_line_no_traceback_exit_2(data, ckpt):
    """The command line: status 2 and exactly one stderr line (the error), for a truncated
    frame met by a DataLoader worker process during training and by the eval loop;
    --debug shows the traceback instead."""
    d = data
    for p in list(d['d_im'].rglob('*.jpg')) + list(d['y_im'].rglob('*.jpg')):
        truncate(p)
    r = _cli(['train.py'] + train_flags(d, '--num_workers', '1', two_shot=True))
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2, r.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith('error: '), r.stderr[-2000:]
    assert '.jpg: cannot read image' in lines[0] and 'truncated' in lines[0]
    assert 'Traceback' not in r.stderr + r.stdout
    print(f'[train.py cli] {lines[0]}')
    assert no_run(d)
    r = _cli(['eval_davis.py'] + davis_args(d, d['tmp'] / 'o', model=ckpt))
    lines = r.stderr.strip().splitlines()          # the progress bar may come first
    assert r.returncode == 2, r.stderr[-2000:]
    assert [ln for ln in lines if ln.startswith('error')] == lines[-1:]
    assert 'davis_001' in lines[-1] and '.jpg: cannot read image' in lines[-1]
    assert 'Traceback' not in r.stderr + r.stdout
    print(f'[eval_davis.py cli] {lines[-1]}')
    r = _cli(['eval_davis.py'] + davis_args(d, d['tmp'] / 'o', '--debug', model=ckpt))
    assert r.returncode != 0 and 'Traceback' in r.stderr
