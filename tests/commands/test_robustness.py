"""Bad input, one test per class: each builds its bad input from the synthetic generator,
runs the command through run_main (as the command line does) and checks exit status 2, one
stderr line naming the file, no traceback, and what is (not) left on disk."""
import os
import shutil

import numpy as np
import pytest
import torch

import eval_davis
import train
from helpers import davis_args, refused
from util.errors import run_main

H, W = 32, 48
pytestmark = pytest.mark.usefixtures('one_thread')


def tree(folder):
    """{relative path: bytes} of every file under folder."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob('*'))
            if p.is_file()}


def train_flags(d, *extra):
    return ['--stage', '3', '--crop_size', '32', '-b', '1', '--num_workers', '0', '-i', '2',
            '--davis_root', d['davis'], '--yv_root', d['yv'], '--save_root', d['save'],
            '--log_every', '1', '--yv_subset', 'none', '--davis_subset', 'none', *extra]


# ---------------------------------------------------------------------- 1. checkpoints

class _RunsCode:
    """Pickles as a call of os.system: loading it with weights_only=False runs the command."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f'touch {self.marker}',)


def test_checkpoint_that_would_run_code_is_refused(data, ckpt, capsys):
    d = data
    marker = d['tmp'] / 'code_ran'
    evil = d['tmp'] / 'evil.pth'
    state = torch.load(ckpt, weights_only=True)
    torch.save({'network': state, 'it': 1, 'optimizer': _RunsCode(marker)}, evil)
    msg = refused(eval_davis.main, davis_args(d, d['tmp'] / 'o', model=evil), capsys,
                  f'{evil}: refused', 'posix.system')
    assert 'could run code' in msg
    refused(train.main, train_flags(d, '--load_network', evil), capsys, f'{evil}: refused')
    refused(train.main, train_flags(d, '--load_model', evil), capsys, f'{evil}: refused')
    assert not marker.exists()
    assert not (d['tmp'] / 'o').exists()
    assert not d['save'].exists() or not os.listdir(d['save'])


def test_numpy_rng_state_allowed_and_nonfinite_weights_refused(data, ckpt, capsys):
    """A checkpoint holding a numpy RNG state loads; weights with a NaN are refused."""
    from model.checkpoint import read_checkpoint
    d = data
    state = torch.load(ckpt, weights_only=True)
    with_rng = d['tmp'] / 'rng.pth'
    torch.save({'network': state, 'it': 1, 'rng': np.random.get_state()}, with_rng)
    back = read_checkpoint(str(with_rng))
    assert back['rng'][0] == 'MT19937' and back['rng'][1].dtype == np.uint32
    key = next(k for k, v in state.items() if v.is_floating_point())
    state[key] = state[key].clone()
    state[key].view(-1)[0] = float('nan')
    bad = d['tmp'] / 'nan.pth'
    torch.save(state, bad)
    refused(eval_davis.main, davis_args(d, d['tmp'] / 'o', model=bad), capsys,
            f'{bad}: weights hold NaN or Inf ({key})')
    assert not (d['tmp'] / 'o').exists()


# ---------------------------------------------------------------------- 2. outputs apart

def test_output_that_is_contains_or_lies_inside_an_input_is_refused(data, ckpt, capsys):
    from phase2.merge import PASS_NAMES
    from phase2_scripts import merge_left_right, prepare_sparse_gt
    from scripts import evaluate as jf
    import eval_youtube_phase2
    d = data
    before = tree(d['root'])
    gt = d['d_gt']
    for out, how in ((gt, 'is'), (gt / 'davis_001', 'lies inside'), (gt.parent, 'contains')):
        refused(eval_davis.main, davis_args(d, out, model=ckpt), capsys,
                f'{out}: output folder (--output) {how} the annotation folder')
    sparse = d['root'] / 'YouTube' / 'phase2' / 'yv_gt_480p'
    refused(eval_youtube_phase2.main, ['--model', ckpt, '--yv_path', d['yv'], '--res', '-1',
                                       '--data_file', sparse, '--output', sparse], capsys,
            f'{sparse}: output folder (--output) is the label source')
    passes = [d['tmp'] / p for p in PASS_NAMES]
    for p in passes:
        p.mkdir()
    refused(merge_left_right.main, ['--gt_dir', sparse] + sum(
        ([f'--{n}', p] for n, p in zip(PASS_NAMES, passes)), [])
        + ['--out', passes[0] / 'bank'], capsys,
        f'{passes[0] / "bank"}: output folder (--out) lies inside the left pass folder')
    refused(prepare_sparse_gt.main, ['--annotations', d['y_gt'], '--split', d['y_split'],
                                     '--out', d['y_gt']], capsys,
            f'{d["y_gt"]}: output folder (--out) is the annotation folder')
    refused(jf.main, ['--gt_path', d['davis'] + '/2017/trainval', '--pred_path', gt], capsys,
            f'{gt}: prediction folder (--pred_path) is the ground truth',
            'scored against itself')
    assert tree(d['root']) == before
    assert not any(any(p.iterdir()) for p in passes)


def test_training_save_root_apart_from_every_data_root(data, capsys):
    d = data
    before = tree(d['root'])
    bank = d['tmp'] / 'bank'
    for save, how, what in ((d['davis'], 'is', 'DAVIS root (--davis_root)'),
                            (d['root'] / 'YouTube' / 'saves', 'lies inside',
                             'YouTube-VOS root (--yv_root)'),
                            (d['root'], 'contains', 'DAVIS root (--davis_root)'),
                            (bank / 'runs', 'lies inside', 'pseudo-label bank (--phase2_davis)')):
        refused(train.main, train_flags(d, '--save_root', save, '--phase2_train', '0',
                                        '--phase2_davis', bank), capsys,
                f'{save}: run folder root (--save_root) {how} the {what}', 'nothing was written')
    assert tree(d['root']) == before
    assert not bank.exists() and not d['save'].exists()


def test_davis_and_youtube_paths_from_one_layout(data, ckpt, capsys):
    """train.py, eval_youtube_phase2.py and check_dataset read DAVIS / YouTube where
    util.layout says, for either spelling of the DAVIS root; a missing part is named."""
    import eval_youtube_phase2
    from scripts.data import check_dataset
    from util import layout
    d = data
    d17 = layout.davis_2017_dir(d['davis'])
    assert layout.davis_2017_dir(d17) == d17 == os.path.join(d['davis'], '2017')
    imageset = layout.davis_imageset(layout.davis_trainval(d17), 2017, 'train')
    sparse = layout.davis_sparse_labels(d17)
    y_frames = layout.youtube_dirs(d['yv'], 'train_480p')[0]
    assert (imageset, y_frames) == (str(d['d_im'].parents[1] / 'ImageSets' / '2017' / 'train.txt'),
                                    str(d['y_im']))
    os.rename(imageset, imageset + '.away')
    os.rename(sparse, sparse + '.away')
    for root in (d['davis'], d17):
        refused(train.main, train_flags(d, '--davis_root', root), capsys, imageset)
        refused(eval_youtube_phase2.main, ['--model', ckpt, '--davis', '--davis_path', root,
                                           '--output', d['tmp'] / 'o'], capsys, sparse)
    assert any(p.startswith(imageset) for p in check_dataset.check_dataset(d['davis'], 'davis'))
    os.rename(imageset + '.away', imageset)
    os.rename(sparse + '.away', sparse)
    os.rename(y_frames, y_frames + '.away')
    refused(train.main, train_flags(d), capsys, y_frames)
    refused(eval_youtube_phase2.main, ['--model', ckpt, '--yv_path', d['yv'], '--reverse',
                                       '--res', '-1', '--output', d['tmp'] / 'o'], capsys,
            y_frames)
    assert any(p.startswith(y_frames) for p in check_dataset.check_dataset(d['yv'], 'youtube'))
    bl = d['tmp'] / 'bl'
    bl.mkdir()
    refused(train.main, train_flags(d, '--stage', '1', '--bl_root', bl), capsys,
            layout.generic_dirs(bl)[0])
    assert not (d['save'].exists() and os.listdir(d['save']))      # the root may be made empty
    assert not (d['tmp'] / 'o').exists()


# ---------------------------------------------------------------------- 3. frame order

def _renumber_unpadded(folders):
    """00000.jpg, 00001.jpg, 00002.jpg ... -> 0.jpg, 5.jpg, 10.jpg (string order differs)."""
    for folder in folders:
        for i, p in enumerate(sorted(folder.iterdir())):
            p.rename(p.with_name(f'{5 * i}{p.suffix}'))


def test_one_frame_order_everywhere_and_duplicate_stems_refused(data, ckpt, capsys):
    """Names that are not zero-padded ('5' < '10'): every command orders by number, so the
    evaluation, inference and training agree on the first frame and the temporal order."""
    from util import metrics
    from util.layout import sort_frames
    from dataset.vos_dataset import VOSDataset
    d = data
    assert sort_frames(['10.jpg', '9.jpg', 'a2.png', 'a10.png', '00003.jpg']) == \
        ['00003.jpg', '9.jpg', '10.jpg', 'a2.png', 'a10.png']
    vids = [p for p in d['d_im'].iterdir()] + [p for p in d['d_gt'].iterdir()]
    _renumber_unpadded(vids)
    # the ground truth as prediction, with frame 5 (the second in time) emptied: in time
    # order 5 is an evaluated frame (J 0); in string order (0, 10, 15, 5) it would be the last
    pred = d['tmp'] / 'pred'
    shutil.copytree(d['d_gt'], pred)
    from util.image_io import write_mask
    for v in pred.iterdir():
        write_mask(v / '5.png', np.zeros((H, W), np.uint8))
    res = metrics.evaluate(d['davis'] + '/2017/trainval', pred, progress=False, verbose=False)
    assert all(j[0] == 0 and j[1] == 1 for j in res['J'].values())
    out = d['tmp'] / 'o'
    run_main(eval_davis.main, [str(a) for a in davis_args(d, out, model=ckpt)])
    assert sorted(p.name for p in (out / 'davis_001').iterdir()) == \
        sorted(p.name for p in (d['d_gt'] / 'davis_001').iterdir())
    ds = VOSDataset(str(d['d_im']), str(d['d_gt']), max_jump=1)
    assert [f for f in ds.frames[ds.videos[0]]] == ['0.jpg', '5.jpg', '10.jpg', '15.jpg']
    # a frame with two files
    dup = d['d_im'] / 'davis_001' / '5.png'
    shutil.copyfile(d['d_gt'] / 'davis_001' / '5.png', dup)
    shutil.rmtree(out)
    refused(eval_davis.main, davis_args(d, out, model=ckpt), capsys,
            f'{d["d_im"] / "davis_001" / "5.jpg"}: frame 5 has 2 files (5.jpg, 5.png)')
    assert not out.exists()
    from scripts.data import check_dataset
    with pytest.raises(SystemExit) as e:
        run_main(check_dataset.main, ['--root', d['davis'], '--layout', 'davis'])
    assert e.value.code == 1
    assert 'frame 5 has 2 files' in capsys.readouterr().out


# ---------------------------------------------------------------------- 4. file contents

def test_visualize_and_prepare_youtube_share_the_frame_layout(data, capsys):
    """scripts.visualize and scripts.data.prepare_youtube list, order and identify frames as every other
    command does: numeric order, and a frame with two files refused before any output."""
    from scripts import visualize
    from scripts.data import prepare_youtube
    d = data
    video = d['y_im'] / sorted(os.listdir(d['y_im']))[0]
    _renumber_unpadded([video, d['y_gt'] / video.name])
    assert visualize._frame_names(video.name, str(video)) == ['0.jpg', '5.jpg', '10.jpg',
                                                              '15.jpg']
    assert [p[3] for p in prepare_youtube._plan(str(d['y_im'].parent), str(d['tmp']),
                                                video.name)] == \
        [['0.jpg', '5.jpg', '10.jpg', '15.jpg'], ['0.png', '5.png', '10.png', '15.png']]
    shutil.copyfile(video / '5.jpg', video / '5.png')
    (video / 'notes.txt').write_text('not a frame')
    before = tree(d['root'])
    sheet, prep = d['tmp'] / 'sheet.png', d['tmp'] / 'prep'
    refused(visualize.main, ['--frames', video, '--masks', d['y_gt'] / video.name,
                             '--out', sheet], capsys,
            f'{video / "5.jpg"}: frame 5 has 2 files (5.jpg, 5.png); keep one per frame')
    refused(prepare_youtube.main, ['--src', d['y_im'].parent, '--out', prep, '--size', '16',
                                   '--workers', '1'], capsys,
            f'{video / "5.jpg"}: frame 5 has 2 files (5.jpg, 5.png); keep one per frame')
    assert tree(d['root']) == before
    assert not sheet.exists() and not prep.exists()


def test_mask_must_be_a_png_and_frames_of_any_mode_read_as_8bit_rgb(data, ckpt, capsys):
    from PIL import Image
    from scripts.data import check_dataset
    from util.image_io import read_frame
    d = data
    # a 16-bit grey frame reads as its 8-bit grey, not all white
    frame = d['d_im'] / 'davis_001' / '00001.jpg'
    grey8 = np.asarray(Image.open(frame).convert('L'))
    g16 = d['tmp'] / 'g16.png'
    Image.fromarray(grey8.astype(np.uint16) * 257).save(g16)
    assert Image.open(g16).mode.startswith('I;16')
    assert (read_frame(str(g16)) == grey8[..., None]).all()
    for mode in ('CMYK', 'LA', 'P', 'I'):
        img = Image.open(frame).convert('L' if mode in ('LA', 'I') else 'RGB').convert(mode)
        img.save(d['tmp'] / f'm.{"tif" if mode == "I" else "png" if mode != "CMYK" else "jpg"}')
    assert np.abs(read_frame(str(d['tmp'] / 'm.jpg')).astype(int)
                  - np.asarray(Image.open(frame).convert('RGB')).astype(int)).mean() < 8
    assert (read_frame(str(d['tmp'] / 'm.png')) == np.asarray(
        Image.open(d['tmp'] / 'm.png').convert('RGB'))).all()
    assert (read_frame(str(d['tmp'] / 'm.tif')) == grey8[..., None]).all()
    # a float frame cannot be read as RGB: refused by name (TIFF data under a .jpg name)
    bad_frame = d['d_im'] / 'davis_001' / '00002.jpg'
    Image.fromarray(np.zeros((H, W), np.float32)).save(bad_frame, format='TIFF')
    out = d['tmp'] / 'o'
    refused(eval_davis.main, davis_args(d, out, model=ckpt), capsys,
            f'{bad_frame}: frame mode F is not supported')
    assert not out.exists()
    # a JPEG stream saved as the first-frame .png annotation
    gt = d['d_gt'] / 'davis_001' / '00000.png'
    Image.open(gt).convert('RGB').save(gt, format='JPEG')
    shutil.copyfile(d['d_im'] / 'davis_000' / '00002.jpg', bad_frame)
    refused(eval_davis.main, davis_args(d, out, model=ckpt), capsys,
            f'{gt}: not a PNG file (JPEG data)')
    assert not out.exists()
    Image.fromarray(np.zeros((H, W), np.float32)).save(bad_frame, format='TIFF')
    with pytest.raises(SystemExit) as e:
        run_main(check_dataset.main, ['--root', d['davis'], '--layout', 'davis'])
    report = capsys.readouterr().out
    assert e.value.code == 1
    assert f'{gt}: not a PNG file (JPEG data)' in report
    assert f'{bad_frame}: frame mode F is not supported' in report


# ---------------------------------------------------------------------- 6. inputs first

def test_every_video_checked_before_the_first_output(data, ckpt, capsys):
    """A broken video late in the list fails the run before the earlier videos are written."""
    from PIL import Image
    import eval_generic
    d = data
    imageset = d['d_gt'].parents[1] / 'ImageSets' / '2017' / 'val.txt'
    imageset.write_text('davis_000\ndavis_001\n')
    out = d['tmp'] / 'o'
    late = d['d_im'] / 'davis_001'
    frame = late / '00003.jpg'
    Image.new('RGB', (W + 8, H)).save(frame)                     # another size
    refused(eval_davis.main, davis_args(d, out, model=ckpt), capsys,
            f'{frame}: frame size {W + 8}x{H} differs from the first frame')
    assert not out.exists()
    shutil.copyfile(d['d_im'] / 'davis_000' / '00003.jpg', frame)
    first = d['d_gt'] / 'davis_001' / '00000.png'
    first.unlink()                                               # first-frame label missing
    refused(eval_davis.main, davis_args(d, out, model=ckpt), capsys, f'{first}: file not found')
    assert not out.exists()
    for p in late.iterdir():                                     # an empty frame folder
        p.unlink()
    refused(eval_davis.main, davis_args(d, out, model=ckpt), capsys, f'{late}: no frames')
    assert not out.exists()
    # the generic layout: a video whose labels hold no object, after a good one
    gen = d['tmp'] / 'generic'
    shutil.copytree(d['y_im'].parent, gen)
    good = gen / 'JPEGImages' / 'yt_train_000'
    shutil.copytree(good, gen / 'JPEGImages' / 'zz_late')
    (gen / 'Annotations' / 'zz_late').mkdir()
    from util.image_io import write_mask
    write_mask(gen / 'Annotations' / 'zz_late' / '00000.png', np.zeros((H, W), np.uint8))
    refused(eval_generic.main, ['--model', ckpt, '--data_path', gen, '--output', out], capsys,
            f'{gen / "Annotations" / "zz_late"}: no labeled frame with an object')
    assert not out.exists()


# ---------------------------------------------------------------------- 10. the merge

def test_merge_knows_every_frame(data, capsys):
    """A frame missing from every pass is an error naming video and frame, also without
    --frames_dir (the frames folder beside phase2/ is used), not a frame left out of the
    bank; where no frames folder can be derived, --frames_dir is asked for."""
    from phase2.merge import PASS_NAMES
    from phase2_scripts import merge_left_right
    d = data
    sparse = d['root'] / 'YouTube' / 'phase2' / 'yv_gt_480p'
    passes = {n: d['tmp'] / n for n in PASS_NAMES}
    for p in passes.values():
        shutil.copytree(d['y_gt'], p)                    # every pass holds every frame
    labeled = sorted(p.stem for p in (sparse / 'yt_train_000').iterdir())   # 00005, 00010
    last = passes['leftsecgt'] / 'yt_train_000' / '00015.png'
    for p in passes.values():                        # the last frame: in no pass at all
        (p / 'yt_train_000' / '00015.png').unlink()
    out = d['tmp'] / 'bank'
    argv = ['--gt_dir', sparse] + sum(([f'--{n}', p] for n, p in passes.items()), []) + \
        ['--out', out]
    assert labeled == ['00005', '00010']
    refused(merge_left_right.main, argv, capsys, 'pass leftsecgt: video yt_train_000',
            f'missing frame file {last}')
    assert not out.exists()
    refused(merge_left_right.main, argv + ['--frames_dir', d['y_im']], capsys, f'{last}')
    assert not out.exists()
    elsewhere = d['tmp'] / 'sparse'
    shutil.copytree(sparse, elsewhere)
    refused(merge_left_right.main, ['--gt_dir', elsewhere] + argv[2:], capsys,
            f'{elsewhere}: cannot tell where the frames', 'give --frames_dir')
    assert 'frames_dir "$FRAMES"' in open(os.path.join(
        os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), 'run_intermediate.sh')).read()


# ---------------------------------------------------------------------- 11. evaluation

def test_evaluation_errors_name_the_right_file(data, capsys):
    import subprocess
    import sys
    from PIL import Image
    from scripts import evaluate as jf
    from util import metrics
    from util.image_io import write_mask
    d = data
    gt_root = d['tmp'] / 'gt'
    shutil.copytree(d['d_gt'], gt_root)
    pred = d['tmp'] / 'pred'
    shutil.copytree(d['d_gt'], pred)
    argv = ['--gt_path', gt_root, '--pred_path', pred]
    # a sequence of 2 frames is reported and excluded; the global row stays a number
    short = gt_root / 'davis_000'
    for p in sorted(short.iterdir())[2:]:
        p.unlink()
    capsys.readouterr()
    res = metrics.evaluate(gt_root, pred, progress=False, verbose=False)
    assert res['excluded'] == ['davis_000'] and res['J&F-Mean'] == pytest.approx(1.0)
    assert f'note: {short}: fewer than 3 ground-truth frames' in capsys.readouterr().out
    for p in pred.glob('*.csv'):
        p.unlink()
    # a ground-truth frame of another size names the ground-truth file
    odd = gt_root / 'davis_001' / '00002.png'
    write_mask(odd, np.zeros((H + 2, W), np.uint8))
    refused(jf.main, argv, capsys, f'{odd}: ground-truth size {W}x{H + 2} differs from the '
                                   'first frame 00000.png')
    # with --workers the same one line, from a pool worker, and no traceback
    env = dict(os.environ, OMP_NUM_THREADS='1')
    r = subprocess.run([sys.executable, '-m', 'scripts.evaluate'] + [str(a) for a in argv]
                       + ['--workers', '2'], capture_output=True, text=True, env=env,
                       cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith('error')]
    assert r.returncode == 2 and len(lines) == 1 and str(odd) in lines[0], r.stderr
    assert 'Traceback' not in r.stderr + r.stdout
    write_mask(odd, np.asarray(Image.open(pred / 'davis_001' / '00002.png')))
    # the first ground-truth frame missing, or holding no object
    first = gt_root / 'davis_001' / '00000.png'
    first.unlink()
    refused(jf.main, argv, capsys, f'{first}: missing: the prediction starts at frame 00000')
    write_mask(first, np.zeros((H, W), np.uint8))
    refused(jf.main, argv, capsys, f'{first}: the first ground-truth frame holds no object')
    assert not list(pred.glob('*.csv'))


# ---------------------------------------------------------------------- 7. environment

def _limited_file_size(limit):
    """preexec_fn: files can grow to `limit` bytes (EFBIG beyond, as a full disk fails)."""
    import resource
    import signal

    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def _cli(args, limit=None):
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONDONTWRITEBYTECODE='1')
    r = subprocess.run([sys.executable] + [str(a) for a in args], cwd=root, env=env,
                       capture_output=True, text=True, timeout=300,
                       preexec_fn=_limited_file_size(limit) if limit else None)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 2, r.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith('error: '), r.stderr[-2000:]
    assert 'Traceback' not in r.stderr + r.stdout
    print(f'[{args[0]}] {lines[0]}')
    return lines[0]


def test_disk_full_read_only_and_unknown_device(data, ckpt, capsys, monkeypatch):
    d = data
    # a checkpoint that does not fit: one line naming it, no temporary file left
    out = d['tmp'] / 'w'
    out.mkdir()
    line = _cli(['-m', 'model.init_weights', '--out', out / 'init.pth'], limit=1 << 20)
    assert f'{out / "init.pth"}: cannot write (File too large)' in line
    assert os.listdir(out) == []
    # a video's two labels are published together: none of them when the second fails
    big = d['tmp'] / 'ann'
    shutil.copytree(d['y_gt'], big)
    labeled = sorted(json_split(d['y_split'])['yt_train_000'])
    second = big / 'yt_train_000' / labeled[1].replace('.jpg', '.png')
    second.write_bytes(second.read_bytes() + b'\0' * 4096)       # past the size limit
    sparse = d['tmp'] / 'sparse'
    line = _cli(['phase2_scripts/prepare_sparse_gt.py', '--annotations', big, '--split',
                 d['y_split'], '--out', sparse], limit=3000)
    assert f'{sparse / "yt_train_000"}: cannot write (File too large)' in line
    assert not (sparse / 'yt_train_000').exists() and not list(sparse.glob('.tmp_*'))
    # a read-only output folder
    if os.geteuid() != 0:                     # root writes anyway
        ro = d['tmp'] / 'ro'
        ro.mkdir(mode=0o555)
        refused(eval_davis.main, davis_args(d, ro / 'o', model=ckpt), capsys, f'{ro / "o"}')
    # an unknown device, or a GPU the machine lacks
    for dev in ('gpu', 'mps', 'cuda:x'):
        refused(eval_davis.main, davis_args(d, d['tmp'] / 'o', '--device', dev, model=ckpt),
                capsys, f'--device {dev}: not a device here')
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: 1)
    refused(eval_davis.main, davis_args(d, d['tmp'] / 'o', '--device', 'cuda:7', model=ckpt),
            capsys, '--device cuda:7: this machine has 1 GPU(s)')
    assert not (d['tmp'] / 'o').exists()


def json_split(path):
    import json
    with open(path) as f:
        return json.load(f)


# ---------------------------------------------------------------------- 8. concurrent writers

def test_second_writer_refused_and_symlinked_video_published(data, ckpt, capsys):
    import subprocess
    import sys
    from util.errors import UserError
    from util.outputs import OutputLock
    d = data
    out = d['tmp'] / 'o'
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    holder = subprocess.Popen(
        [sys.executable, '-c', 'import sys\nfrom util.outputs import OutputLock\n'
         f'with OutputLock({str(out)!r}):\n    print("held", flush=True)\n    sys.stdin.read()'],
        cwd=root, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == 'held'
        refused(eval_davis.main, davis_args(d, out, model=ckpt), capsys,
                f'{out}: another run is writing this output folder (--output)',
                f'{out / ".lock"}')
        assert os.listdir(out) == ['.lock']
    finally:
        holder.communicate('', timeout=60)
    assert not out.exists()                    # the lock file (and the folder made for it) go
    run_main(eval_davis.main, [str(a) for a in davis_args(d, out, model=ckpt)])
    assert sorted(os.listdir(out)) == ['.settings.json', 'davis_001']
    # shards of one run share a folder; the same shard twice, or a whole run beside a shard,
    # is refused
    shared = d['tmp'] / 'shared'
    with OutputLock(shared, shard=(0, 2)), OutputLock(shared, shard=(1, 2)):
        for shard in ((0, 2), None):
            with pytest.raises(UserError, match='another run is writing'):
                OutputLock(shared, shard=shard).__enter__()
    assert not shared.exists()
    # a video folder of the output that is a symbolic link is replaced, its target kept
    from phase2.merge import PASS_NAMES
    from phase2_scripts import merge_left_right
    sparse = d['root'] / 'YouTube' / 'phase2' / 'yv_gt_480p'
    passes = {n: d['tmp'] / n for n in PASS_NAMES}
    for p in passes.values():
        shutil.copytree(d['y_gt'], p)
    bank = d['tmp'] / 'bank' / 'Annotations'
    bank.mkdir(parents=True)
    target = d['tmp'] / 'elsewhere'
    target.mkdir()
    (target / 'keep.txt').write_text('mine')
    (bank / 'yt_train_000').symlink_to(target)
    run_main(merge_left_right.main, ['--gt_dir', str(sparse), '--out', str(bank.parent)] + sum(
        ([f'--{n}', str(p)] for n, p in passes.items()), []))
    assert not (bank / 'yt_train_000').is_symlink()
    assert len(list((bank / 'yt_train_000').glob('*.png'))) == 4
    assert (target / 'keep.txt').read_text() == 'mine'
    assert sorted(os.listdir(bank)) == ['yt_train_000']


def test_two_training_runs_in_one_run_folder(data, capsys, monkeypatch):
    """Two train.py with the same --id started in the same second share a run folder name:
    the second is refused naming it and writes nothing there."""
    import datetime
    from util.outputs import OutputLock
    d = data

    class Frozen(datetime.datetime):
        @classmethod
        def now(cls, tz=None):
            return cls(2026, 1, 1, 12, 0, 0)
    monkeypatch.setattr(train.datetime, 'datetime', Frozen)
    run_dir = d['save'] / 'Jan01_12.00.00_same'
    with OutputLock(run_dir, 'run folder (--id)'):
        refused(train.main, train_flags(d, '--id', 'same'), capsys,
                f'{run_dir}: another run is writing this run folder (--id)')
        assert os.listdir(run_dir) == ['.lock']


# ---------------------------------------------------------------------- 9. interrupted runs

def test_resume_removes_what_a_killed_run_left(data, ckpt, capsys):
    d = data
    # eval --resume: a temporary PNG and a half-published video folder of a killed run
    out = d['tmp'] / 'o'
    run_main(eval_davis.main, [str(a) for a in davis_args(d, out, model=ckpt)])
    stale = [out / 'davis_001' / '.tmp_x1y2.png', out / '.tmp_davis_001', out / '.old_davis_001']
    stale[0].write_bytes(b'\x89PNG half')
    for p in stale[1:]:
        p.mkdir()
        (p / '00000.png').write_bytes(b'')
    capsys.readouterr()
    run_main(eval_davis.main, [str(a) for a in davis_args(d, out, '--resume', model=ckpt)])
    assert 'note: removed 3 temporary file(s) left by an interrupted run' in \
        capsys.readouterr().out
    assert sorted(os.listdir(out)) == ['.settings.json', 'davis_001']
    assert not [p for p in (out / 'davis_001').iterdir() if p.name.startswith('.')]
    # train --load_model: the temporary checkpoint of a run killed while saving
    assert train.main([str(a) for a in train_flags(d, '--id', 'k')]) == 0
    run_dir = next(d['save'].iterdir())
    ck = next(run_dir.glob('*_checkpoint.pth'))
    tmp = run_dir / '.tmp_q8z1.pth'
    tmp.write_bytes(b'\0' * 128)
    capsys.readouterr()
    train.main([str(a) for a in train_flags(d, '--id', 'k2', '--load_model', ck,
                                                '-i', '3')])
    assert f'note: removed 1 temporary file(s) left by an interrupted run in {run_dir}' in \
        capsys.readouterr().out
    assert not tmp.exists() and ck.exists()
    assert not [p for p in run_dir.iterdir() if p.name.startswith('.')]


# ---------------------------------------------------------------------- 5. same validation

def test_lists_and_json_validated_alike_for_training_and_evaluation(data, ckpt, capsys):
    """A list naming a video twice or a video that does not exist, a JSON key given twice,
    an empty meta.json: the same refusal from training, inference and evaluation."""
    import eval_youtube
    from scripts import evaluate as jf
    d = data
    tv = d['d_gt'].parents[1]
    for name in ('train', 'val'):
        lst = tv / 'ImageSets' / '2017' / f'{name}.txt'
        good = lst.read_text()
        video = good.split()[0]
        lst.write_text(good + video + '\n')                      # listed twice
        fn, argv = (train.main, train_flags(d)) if name == 'train' else \
            (eval_davis.main, davis_args(d, d['tmp'] / 'o', model=ckpt))
        refused(fn, argv, capsys, f'{lst}: video {video!r} is listed twice')
        if name == 'val':
            refused(jf.main, ['--gt_path', tv, '--pred_path', d['tmp']], capsys,
                    f'{lst}: video {video!r} is listed twice')
        lst.write_text(good + 'no_such_video\n')                 # a video that does not exist
        refused(fn, argv, capsys, f"{lst}: video 'no_such_video' has no frame folder")
        lst.write_text(good)
    split = d['y_split']
    text = open(split).read()
    key = next(iter(json_split(split)))
    with open(split, 'w') as f:                                  # a key twice
        f.write(text.replace('{', '{"%s": ["00000.jpg", "00005.jpg"], ' % key, 1))
    refused(train.main, train_flags(d, '--yv_data', split, '--davis_data', d['d_split']),
            capsys, f'{split}: key {key!r} appears twice')
    meta = d['root'] / 'YouTube' / 'valid' / 'meta.json'
    meta.write_text('{"videos": {}}')
    refused(eval_youtube.main, ['--model', ckpt, '--yv_path', d['yv'], '--output',
                                d['tmp'] / 'o'], capsys, f'{meta}: lists no videos')
    assert not (d['tmp'] / 'o').exists()
    # frames of different sizes in one training video, as inference refuses them
    from PIL import Image
    odd = d['y_im'] / 'yt_train_000' / '00010.jpg'
    Image.new('RGB', (W, H + 16)).save(odd)
    refused(train.main, train_flags(d), capsys, f'{odd}: frame size {W}x{H + 16} differs from '
                                                'the first frame of the video')
    assert not d['save'].exists() or not os.listdir(d['save'])
