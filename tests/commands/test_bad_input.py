"""Bad input to a run: checkpoints, flags, output folders, the machine, concurrent runs, the CLI."""
import json
import os
import shutil

import numpy as np
import pytest
import torch

import eval_davis
import eval_generic
import eval_youtube
import eval_youtube_phase2
import train
from helpers import (REPO, davis_args, expect, no_run, refused, run_cli, train_flags, tree,
                     truncate)
from phase2.merge import PASS_NAMES
from phase2_scripts import merge_left_right, prepare_sparse_gt
from scripts import evaluate as jf
from util.errors import run_main

pytestmark = pytest.mark.usefixtures('one_thread')


def one_error_line(r):
    """A finished command line (run_cli) must have exited 2 with exactly one stderr line,
    'error: ...', and no traceback. Returns the line."""
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 2, r.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith('error: '), r.stderr[-2000:]
    assert 'Traceback' not in r.stderr + r.stdout
    print(f'[{r.args[1]}] {lines[0]}')
    return lines[0]


# ---------------------------------------------------------------------- checkpoints

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


# ---------------------------------------------------------------------- output folders

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


def test_output_folder_not_writable(data, fast_load):
    d = data
    blocker = d['tmp'] / 'a_file'
    blocker.write_text('not a folder')
    under_file = blocker / 'sub'
    expect(eval_davis.main, davis_args(d, under_file), under_file,
           'output folder (--output) is not writable (Not a directory)')
    expect(eval_davis.main, davis_args(d, '/proc/stcn_out'), '/proc/stcn_out',
           'is not writable')
    if os.geteuid() != 0:                     # root writes anyway
        ro = d['tmp'] / 'ro'
        ro.mkdir(mode=0o555)
        expect(eval_davis.main, davis_args(d, ro / 'o'), ro / 'o')
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


# ---------------------------------------------------------------------- the machine

def test_disk_full_and_unknown_device(data, ckpt, capsys, monkeypatch):
    d = data
    # a checkpoint that does not fit: one line naming it, no temporary file left
    out = d['tmp'] / 'w'
    out.mkdir()
    line = one_error_line(run_cli(['-m', 'model.init_weights', '--out', out / 'init.pth'],
                                  limit=1 << 20))
    assert f'{out / "init.pth"}: cannot write (File too large)' in line
    assert os.listdir(out) == []
    # a video's two labels are published together: none of them when the second fails
    big = d['tmp'] / 'ann'
    shutil.copytree(d['y_gt'], big)
    labeled = sorted(json.load(open(d['y_split']))['yt_train_000'])
    second = big / 'yt_train_000' / labeled[1].replace('.jpg', '.png')
    second.write_bytes(second.read_bytes() + b'\0' * 4096)       # past the size limit
    sparse = d['tmp'] / 'sparse'
    line = one_error_line(run_cli(['phase2_scripts/prepare_sparse_gt.py', '--annotations',
                                   big, '--split', d['y_split'], '--out', sparse], limit=3000))
    assert f'{sparse / "yt_train_000"}: cannot write (File too large)' in line
    assert not (sparse / 'yt_train_000').exists() and not list(sparse.glob('.tmp_*'))
    # an unknown device, or a GPU the machine lacks
    for dev in ('gpu', 'mps', 'cuda:x'):
        refused(eval_davis.main, davis_args(d, d['tmp'] / 'o', '--device', dev, model=ckpt),
                capsys, f'--device {dev}: not a device here')
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: 1)
    refused(eval_davis.main, davis_args(d, d['tmp'] / 'o', '--device', 'cuda:7', model=ckpt),
            capsys, '--device cuda:7: this machine has 1 GPU(s)')
    assert not (d['tmp'] / 'o').exists()


# ---------------------------------------------------------------------- concurrent writers

def test_second_writer_refused_and_symlinked_video_published(data, ckpt, capsys):
    import subprocess
    import sys
    from util.errors import UserError
    from util.outputs import OutputLock
    d = data
    out = d['tmp'] / 'o'
    holder = subprocess.Popen(
        [sys.executable, '-c', 'import sys\nfrom util.outputs import OutputLock\n'
         f'with OutputLock({str(out)!r}):\n    print("held", flush=True)\n    sys.stdin.read()'],
        cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
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


# ---------------------------------------------------------------------- interrupted runs

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


# ---------------------------------------------------------------------- the command line

def test_cli_one_line_no_traceback_exit_2(data, ckpt):
    """The command line: status 2 and exactly one stderr line (the error), for a truncated
    frame met by a DataLoader worker process during training and by the eval loop;
    --debug shows the traceback instead."""
    d = data
    for p in list(d['d_im'].rglob('*.jpg')) + list(d['y_im'].rglob('*.jpg')):
        truncate(p)
    line = one_error_line(run_cli(['train.py'] + train_flags(d, '--num_workers', '1',
                                                         two_shot=True)))
    assert '.jpg: cannot read image' in line and 'truncated' in line
    assert no_run(d)
    r = run_cli(['eval_davis.py'] + davis_args(d, d['tmp'] / 'o', model=ckpt))
    lines = r.stderr.strip().splitlines()          # the progress bar may come first
    assert r.returncode == 2, r.stderr[-2000:]
    assert [ln for ln in lines if ln.startswith('error')] == lines[-1:]
    assert 'davis_001' in lines[-1] and '.jpg: cannot read image' in lines[-1]
    assert 'Traceback' not in r.stderr + r.stdout
    print(f'[eval_davis.py cli] {lines[-1]}')
    r = run_cli(['eval_davis.py'] + davis_args(d, d['tmp'] / 'o', '--debug', model=ckpt))
    assert r.returncode != 0 and 'Traceback' in r.stderr
