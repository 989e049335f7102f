"""Bad input, round 2: one test per class of README "What bad input gets" added with it.

Each test breaks a private copy of the synthetic trees, runs the commands that meet the bad
input through run_main (as the command line does) and checks exit status 2, one stderr line
naming the path, no traceback, and that every input is byte for byte (and link for link)
what it was.
"""
import json
import os
import shutil
import subprocess

import numpy as np
import pytest
import torch

import eval_davis
import eval_youtube
import eval_youtube_bank
import eval_youtube_phase2
import train
from helpers import NO_SUBSETS, davis_args, refused
from phase2.merge import PASS_NAMES, source_plan
from phase2_scripts import make_two_shot_split, merge_left_right, prepare_sparse_gt
from scripts import visualize
from scripts.data import check_dataset
from util.errors import run_main
from util.image_io import write_mask

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
pytestmark = pytest.mark.usefixtures('one_thread')


def snapshot(folder):
    """{relative path: bytes, or ('link', target) for a symbolic link} under folder."""
    out = {}
    for d, dirs, files in os.walk(folder):
        for n in dirs + files:
            p = os.path.join(d, n)
            rel = os.path.relpath(p, folder)
            if os.path.islink(p):
                out[rel] = ('link', os.readlink(p))
            elif os.path.isfile(p):
                with open(p, 'rb') as f:
                    out[rel] = f.read()
    return out


def train_flags(d, *extra):
    return ['--stage', '3', '--crop_size', '32', '-b', '1', '--num_workers', '0', '-i', '3',
            '--davis_root', d['davis'], '--yv_root', d['yv'], '--save_root', d['save'],
            '--log_every', '1', *NO_SUBSETS, *extra]


def pass_flags(d):
    """merge_left_right's flags with four pass trees copied from the YouTube ground truth."""
    flags = ['--gt_dir', d['y_sparse']]
    for n in PASS_NAMES:
        shutil.copytree(d['y_gt'], d['tmp'] / n)
        flags += [f'--{n}', d['tmp'] / n]
    return flags


# ---------------------------------------------------------------------- 1. names, not paths

def test_names_from_lists_are_names_not_paths(data, fast_load, capsys):
    d = data
    before = snapshot(d['root'])
    # an ImageSets line that walks out of the frame folder and back: written beside --output
    lst = d['tv'] / 'ImageSets' / '2017' / 'val.txt'
    lst.write_text('../480p/davis_001\n')
    before[os.path.relpath(lst, d['root'])] = lst.read_bytes()
    out = d['tmp'] / 'o'
    refused(eval_davis.main, davis_args(d, out), capsys,
            f"{lst}: video name '../480p/davis_001' holds a path separator")
    assert not out.exists() and not (d['tmp'] / '480p').exists()
    # a split JSON key that leads from --out into the ground truth: prepare_sparse_gt would
    # replace the ground truth of the video by its two labels
    split = d['tmp'] / 'split.json'
    split.write_text(json.dumps({'../Annotations/yt_train_000': ['00000.jpg', '00010.jpg']}))
    sparse = d['y_gt'].parent / 'sparse'
    refused(prepare_sparse_gt.main, ['--annotations', d['y_gt'], '--split', split,
                                     '--out', sparse], capsys,
            f"{split}: video name '../Annotations/yt_train_000' holds a path separator")
    # the same split for intermediate inference; a frame name with a separator; '..'
    refused(eval_youtube_phase2.main, ['--model', 'x', '--yv_path', d['yv'], '--res', '-1',
                                       '--data_file', split, '--output', d['tmp'] / 'p'], capsys,
            f'{split}: video name', 'holds a path separator')
    split.write_text(json.dumps({'yt_train_000': ['../00000.jpg']}))
    refused(eval_youtube_phase2.main, ['--model', 'x', '--yv_path', d['yv'], '--res', '-1',
                                       '--data_file', split, '--output', d['tmp'] / 'p'], capsys,
            f"{split}: frame name '../00000.jpg' holds a path separator")
    meta = d['root'] / 'YouTube' / 'valid' / 'meta.json'
    m = json.loads(meta.read_text())
    m['videos']['..'] = m['videos']['yt_valid_000']
    meta.write_text(json.dumps(m))
    before[os.path.relpath(meta, d['root'])] = meta.read_bytes()
    refused(eval_youtube.main, ['--model', 'x', '--yv_path', d['yv'], '--output',
                                d['tmp'] / 'q'], capsys,
            f"{meta}: video name '..' is a relative folder reference")
    assert snapshot(d['root']) == before
    assert not sparse.exists() and not (d['tmp'] / 'p').exists()
    # check_dataset reports both
    split.write_text(json.dumps({'../yt_train_000': ['00000.jpg']}))
    capsys.readouterr()
    assert check_dataset.main(['--root', d['yv'], '--layout', 'youtube',
                               '--split_json', str(split)]) == 1
    text = capsys.readouterr().out
    assert f"{split}: video name '../yt_train_000' holds a path separator" in text
    assert f"{meta}: video name '..' is a relative folder reference" in text


# ---------------------------------------------------------------------- 2. no write through links

def test_writes_never_follow_a_link_into_an_input(data, fast_load, capsys):
    d = data
    before = snapshot(d['root'])
    # a video folder of --output that links to the ground truth of that video
    out = d['tmp'] / 'o'
    out.mkdir()
    (out / 'davis_001').symlink_to(d['d_gt'] / 'davis_001')
    for extra in ([], ['--resume']):
        refused(eval_davis.main, davis_args(d, out, *extra), capsys,
                f'{out / "davis_001"}: this entry of the output folder (--output) is a symbolic '
                'link')
    # <output>/Annotations of an intermediate pass linking to the ground truth
    out2 = d['tmp'] / 'pass'
    out2.mkdir()
    (out2 / 'Annotations').symlink_to(d['y_gt'])
    refused(eval_youtube_phase2.main, ['--model', 'x', '--yv_path', d['yv'], '--res', '-1',
                                       '--data_file', d['y_sparse'], '--output', out2], capsys,
            f'{out2 / "Annotations"}: output folder (--output) is the annotation folder')
    # the bank: a video folder linking to the sparse labels
    bank = d['tmp'] / 'bank'
    (bank / 'Annotations').mkdir(parents=True)             # the bank's layout
    (bank / 'Annotations' / 'yt_train_000').symlink_to(d['y_sparse'] / 'yt_train_000')
    refused(eval_youtube_bank.main, ['--model', 'x', '--yv_path', d['yv'], '--res', '-1',
                                     '--output', bank], capsys,
            f'{bank / "Annotations" / "yt_train_000"}: this entry')
    assert snapshot(d['root']) == before
    # the split tools replace a linked PNG or video folder, the link's target untouched
    split = d['tmp'] / 'split.json'
    split.symlink_to(d['y_split'])
    sparse = d['tmp'] / 'sparse'
    sparse.mkdir()
    (sparse / 'yt_train_000').symlink_to(d['y_gt'] / 'yt_train_000')
    assert make_two_shot_split.main(['--annotations', str(d['y_gt']), '--out', str(split)]) == 0
    assert not split.is_symlink()
    assert prepare_sparse_gt.main(['--annotations', str(d['y_gt']), '--split', str(split),
                                   '--out', str(sparse)]) == 0
    assert not (sparse / 'yt_train_000').is_symlink()
    assert snapshot(d['root']) == before


# ---------------------------------------------------------------------- 3. file outputs

def test_file_outputs_apart_from_inputs_and_of_the_right_kind(data, capsys):
    d = data
    before = snapshot(d['root'])
    lst = d['tv'] / 'ImageSets' / '2017' / 'train.txt'
    refused(make_two_shot_split.main, ['--annotations', d['d_gt'], '--video_list', lst,
                                       '--out', lst], capsys,
            f'{lst}: split file (--out) is the video list {lst}')
    gt_png = d['d_gt'] / 'davis_000' / '00000.png'
    refused(visualize.main, ['--frames', d['d_im'], '--masks', d['d_gt'], '--out', gt_png],
            capsys, f'{gt_png}: output file (--out) lies inside the mask folder')
    folder = d['tmp'] / 'sheet.png'
    folder.mkdir()
    refused(visualize.main, ['--frames', d['d_im'], '--masks', d['d_gt'], '--out', folder],
            capsys, f'{folder}: output file (--out) is a folder')
    a_file = d['tmp'] / 'file'
    a_file.write_text('x')
    refused(make_two_shot_split.main, ['--annotations', d['d_gt'], '--out',
                                       a_file / 'split.json'], capsys,
            f'{a_file / "split.json"}: split file (--out) lies under {a_file}, which is a file')
    refused(visualize.main, ['--frames', d['d_im'], '--masks', d['d_gt'], '--out', a_file,
                             '--format', 'gif'], capsys,
            f'{a_file}: output folder (--out) is a file')
    assert snapshot(d['root']) == before
    assert sorted(os.listdir(d['tmp'])) == ['data', 'file', 'sheet.png']


# ---------------------------------------------------------------------- 4. training

def test_diverged_or_impossible_training_is_not_a_success(data, capsys):
    d = data
    before = snapshot(d['root'])
    for flag, value in (('--lr', 'nan'), ('--lr', '-1'), ('--phase2_thres', '1.5'),
                        ('--semi_thres_upper', '-0.1'), ('--gamma', 'inf')):
        capsys.readouterr()
        with pytest.raises(SystemExit) as e:
            run_main(train.main, [str(a) for a in train_flags(d, flag, value)])
        assert e.value.code == 2 and f'{flag} must be' in capsys.readouterr().err
    assert not d['save'].exists()
    # diverging: iteration 1 is saved (finite), the loss of iteration 2 is NaN
    refused(train.main, train_flags(d, '--lr', '1e30', '--save_every', '1', '--id', 'div'),
            capsys, 'training diverged at iteration 2: the loss is nan')
    run_dir = next(d['save'].iterdir())
    ck = next(run_dir.glob('*_checkpoint.pth'))
    state = torch.load(ck, weights_only=False)
    assert state['it'] == 1
    assert all(bool(torch.isfinite(v).all()) for v in state['network'].values()
               if v.is_floating_point())
    assert sorted(p.name for p in run_dir.glob('*.pth')) == [
        f'{run_dir.name}_1.pth', f'{run_dir.name}_checkpoint.pth']
    # resume checkpoints that would not continue the run exactly
    good = torch.load(ck, weights_only=False)
    cases = []
    bad = dict(good, it=-1)
    cases.append((bad, 'iteration -1 is not a whole number >= 0'))
    bad = dict(good, scheduler=None)
    cases.append((bad, 'no scheduler state'))
    opt = {'state': {k: dict(v) for k, v in good['optimizer']['state'].items()},
           'param_groups': good['optimizer']['param_groups']}
    opt['state'][0]['exp_avg'] = torch.full_like(opt['state'][0]['exp_avg'], float('nan'))
    cases.append((dict(good, optimizer=opt), 'optimiser state exp_avg of parameter 0 holds NaN'))
    opt = {'state': {k: dict(v) for k, v in good['optimizer']['state'].items()},
           'param_groups': good['optimizer']['param_groups']}
    opt['state'][0]['exp_avg'] = opt['state'][0]['exp_avg'].flatten()
    cases.append((dict(good, optimizer=opt), 'optimiser state exp_avg of parameter 0 has shape'))
    opt = {'state': good['optimizer']['state'],
           'param_groups': [dict(g, lr=float('inf')) for g in good['optimizer']['param_groups']]}
    cases.append((dict(good, optimizer=opt), 'optimiser learning rate inf'))
    resume_path = d['tmp'] / 'resume_checkpoint.pth'
    runs = sorted(os.listdir(d['save']))
    for obj, fragment in cases:
        torch.save(obj, resume_path)
        refused(train.main, train_flags(d, '--load_model', resume_path, '--id', 'r'), capsys,
                f'{resume_path}: {fragment}')
        assert sorted(os.listdir(d['save'])) == runs           # nothing was written
    assert snapshot(d['root']) == before


# ---------------------------------------------------------------------- 5. merge validates

def test_merge_publishes_only_valid_masks(data, capsys):
    d = data
    flags = pass_flags(d)
    before = snapshot(d['root'])
    out = d['tmp'] / 'bank'
    frames = sorted(f[:-4] for f in os.listdir(d['y_im'] / 'yt_train_000'))
    labeled = sorted(f[:-4] for f in os.listdir(d['y_sparse'] / 'yt_train_000'))
    plan = source_plan(len(frames), [frames.index(f) for f in labeled])
    i = next(i for i, src in enumerate(plan) if src != 'gt')       # a frame a pass provides
    victim = d['tmp'] / plan[i] / 'yt_train_000' / f'{frames[i]}.png'
    good = victim.read_bytes()
    victim.write_bytes(good[:len(good) // 2])                     # truncated
    refused(merge_left_right.main, flags + ['--out', out], capsys, f'{victim}: cannot read image')
    write_mask(victim, np.zeros((16, 48), np.uint8))               # wrong size
    refused(merge_left_right.main, flags + ['--out', out], capsys,
            f'{victim}: mask size 48x16 differs from the frames of video yt_train_000 '
            '(48x32, as its label')
    mask = np.zeros((32, 48), np.uint8)
    mask[3:9, 4:20] = 77                                           # an object of no label
    write_mask(victim, mask)
    refused(merge_left_right.main, flags + ['--out', out], capsys,
            f'{victim}: label id 77 is not an object of the sparse labels of video '
            'yt_train_000')
    assert not out.exists()
    assert snapshot(d['root']) == before


# ---------------------------------------------------------------------- 6. --resume settings

def test_resume_refuses_other_settings(data, ckpt, tmp_path, capsys):
    d = data
    out = d['tmp'] / 'o'
    run_main(eval_davis.main, [str(a) for a in davis_args(d, out, model=ckpt)])
    before, outputs = snapshot(d['root']), snapshot(out)
    refused(eval_davis.main, davis_args(d, out, '--resume', '--top', '10', model=ckpt), capsys,
            f'{out}: --resume with --top 10, but its outputs were made with --top 20',
            f'{out / ".settings.json"}')
    refused(eval_davis.main, davis_args(d, out, '--resume', '--mem_every', '3', model=ckpt),
            capsys, '--resume with --mem_every 3, but its outputs were made with --mem_every 5')
    other = tmp_path / 'other.pth'
    sd = torch.load(ckpt, weights_only=True)
    sd = {k: v + 1e-3 if v.is_floating_point() else v for k, v in sd.items()}
    torch.save(sd, other)
    refused(eval_davis.main, davis_args(d, out, '--resume', model=other), capsys,
            '--resume with --model (sha256)', 'but its outputs were made with --model (sha256)')
    assert snapshot(d['root']) == before and snapshot(out) == outputs
    run_main(eval_davis.main, [str(a) for a in davis_args(d, out, '--resume', model=ckpt)])
    assert snapshot(out) == outputs


# ---------------------------------------------------------------------- 7. nothing skipped

def test_folder_or_link_loop_where_a_file_is_expected(data, fast_load, capsys):
    d = data
    video = d['d_im'] / 'davis_001'
    (video / '00004.jpg').mkdir()                                  # a folder named as a frame
    before = snapshot(d['root'])
    out = d['tmp'] / 'o'
    refused(eval_davis.main, davis_args(d, out), capsys,
            f'{video / "00004.jpg"}: is a folder; a frame or mask must be a regular file')
    (video / '00004.jpg').rmdir()
    loops = []
    for v in ('davis_000', 'davis_001'):                           # a link loop as a frame
        loops.append(d['d_im'] / v / '00002.jpg')
        loops[-1].unlink()
        loops[-1].symlink_to(loops[-1])
    before = snapshot(d['root'])
    refused(eval_davis.main, davis_args(d, out), capsys,
            f'{loops[1]}: cannot be read (Too many levels of symbolic links)')
    refused(train.main, train_flags(d), capsys, f'{loops[0]}: cannot be read')
    vloop = d['y_sparse'] / 'yt_loop'
    vloop.symlink_to(vloop)                                        # a link loop as a video
    refused(eval_youtube_phase2.main, ['--model', 'x', '--yv_path', d['yv'], '--res', '-1',
                                       '--data_file', d['y_sparse'], '--output', d['tmp'] / 'p'],
            capsys, f'{vloop}: cannot be read (Too many levels of symbolic links)')
    flags = pass_flags(d)
    refused(merge_left_right.main, flags + ['--out', d['tmp'] / 'bank'], capsys, f'{vloop}')
    vloop.unlink()
    before = snapshot(d['root'])
    assert not out.exists() and not (d['tmp'] / 'bank').exists()
    capsys.readouterr()
    assert check_dataset.main(['--root', d['davis'], '--layout', 'davis']) == 1
    text = capsys.readouterr().out
    assert all(f'{loop}: cannot be read' in text for loop in loops), text
    assert snapshot(d['root']) == before


# ---------------------------------------------------------------------- 8. early, not late

def test_checked_before_the_first_output(data, ckpt, tmp_path, capsys):
    d = data
    before = snapshot(d['root'])
    # --zip whose target is a folder: refused before inference writes anything
    out = d['tmp'] / 'yv'
    (d['tmp'] / 'yv.zip').mkdir()
    refused(eval_youtube.main, ['--model', ckpt, '--yv_path', d['yv'], '--output', out,
                                '--zip', '--res', '-1'], capsys,
            f'{d["tmp"] / "yv.zip"}: zip file (--zip) is a folder')
    assert not out.exists()
    # checkpoint tensors that are integers or sparse where the network holds floats
    sd = torch.load(ckpt, weights_only=True)
    key = next(k for k, v in sd.items() if v.is_floating_point() and v.dim() == 4)
    for kind, tensor in (('int64', sd[key].round().long()), ('sparse_coo', sd[key].to_sparse())):
        bad = tmp_path / f'{kind}.pth'
        torch.save(dict(sd, **{key: tensor}), bad)
        refused(eval_davis.main, davis_args(d, d['tmp'] / 'o', model=bad), capsys,
                f'{bad}: tensor {key}', kind)
    assert not (d['tmp'] / 'o').exists()
    # run_intermediate.sh: an unknown step is refused before the first step runs
    env = dict(os.environ, PYTHON='echo', MODEL='m.pth', DAVIS_ROOT=d['davis'],
               OUT_ROOT=str(d['tmp'] / 'inter'))
    r = subprocess.run(['bash', os.path.join(ROOT, 'run_intermediate.sh'), 'davis', 'left',
                        'lfet'], cwd=ROOT, env=env, capture_output=True, text=True)
    assert r.returncode == 2 and "unknown step 'lfet'" in r.stderr and '+ ' not in r.stdout
    # the experiment script: an unknown --device before any experiment folder
    from scripts.experiments import two_shot_table
    exp = d['tmp'] / 'exp'
    refused(two_shot_table.main, ['--preset', 'tiny', '--device', 'gpu9', '--out', exp, '--quiet'],
            capsys, '--device gpu9: not a device here')
    assert not exp.exists()
    assert snapshot(d['root']) == before
