"""Interruptions: atomic files, a killed train.py resumes to the very same weights, eval
--resume skips finished videos.

The kill-and-resume tests train the real STCN on CPU at a tiny scale (crop 32, batch 2,
5 iterations over 6 samples: the semi phase starts at iteration 1 and crosses an epoch
boundary at iteration 4) and compare every tensor of the final student and teacher with
an uninterrupted run of the same seed.
"""
import hashlib
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import eval_davis
import eval_driver
import eval_generic
import eval_youtube
import eval_youtube_phase2
import train
from dataset.sampling import EpochSampler, SeededSamples
from util.errors import UserError, run_main
from util.files import atomic_write, save_checkpoint
from util.image_io import complete_pngs, write_mask
from helpers import training_layouts

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
H, W = 32, 48
ITS = 5


pytestmark = pytest.mark.usefixtures('one_thread')


# ---------------------------------------------------------------------- atomic files

def test_atomic_write_mode_and_failure_keeps_old(tmp_path):
    target = tmp_path / 'sub' / 'a.bin'
    atomic_write(target, lambda tmp: open(tmp, 'wb').write(b'old'))
    assert target.read_bytes() == b'old'
    assert oct(os.stat(target).st_mode & 0o777) == oct(0o644)        # not mkstemp's 0600

    def half_then_fail(tmp):
        with open(tmp, 'wb') as f:
            f.write(b'new-but-incomplete')
        raise RuntimeError('disk on fire')
    with pytest.raises(RuntimeError):
        atomic_write(target, half_then_fail)
    assert target.read_bytes() == b'old'
    assert os.listdir(target.parent) == ['a.bin']                      # temp file removed
    write_mask(tmp_path / 'm.png', np.eye(4, dtype=np.uint8))
    assert oct(os.stat(tmp_path / 'm.png').st_mode & 0o777) == oct(0o644)


def test_sigterm_during_a_write_removes_the_temp_and_exits_143(tmp_path):
    """run_main turns SIGTERM into an exception: the writer's temp file is removed, the old
    file stays, status 143 and one line."""
    target = tmp_path / 'ck.pth'
    save_checkpoint({'v': torch.zeros(3)}, target)

    def writer(tmp):
        with open(tmp, 'wb') as f:
            f.write(b'partial')
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)                                 # the handler raises before this ends
    with pytest.raises(SystemExit) as e:
        run_main(lambda argv: atomic_write(target, writer), [])
    assert e.value.code == 143
    assert torch.load(target)['v'].shape == (3,)
    assert os.listdir(tmp_path) == ['ck.pth']
    assert signal.getsignal(signal.SIGTERM) is not None              # handler restored


KILL_WRITER = r'''
import sys
from util.files import atomic_write
i = 0
while True:
    data = bytes([i % 251]) * 8_000_000          # 8 MB of one byte value per version
    atomic_write(sys.argv[1], lambda tmp: open(tmp, 'wb').write(data))
    i += 1
    print(i, flush=True)
'''


def test_sigkill_never_leaves_a_truncated_file(tmp_path):
    '''SIGKILL a process rewriting an 8 MB file (through atomic_write, as checkpoints and
    PNGs are) at several moments: the file at the target path is always one complete
    version (only hidden .tmp_* files may stay behind).'''
    script = tmp_path / 'writer.py'
    script.write_text(KILL_WRITER)
    target = tmp_path / 'out' / 'ck.bin'
    for delay in (0.0, 0.05, 0.13, 0.31, 0.5):
        p = subprocess.Popen([sys.executable, str(script), str(target)], stdout=subprocess.PIPE,
                             text=True, env=dict(os.environ, PYTHONPATH=ROOT))
        assert p.stdout.readline().strip()                            # one version written
        time.sleep(delay)
        p.kill()
        p.wait()
        raw = target.read_bytes()
        assert len(raw) == 8_000_000 and raw.count(raw[:1]) == len(raw)
        assert [f for f in os.listdir(target.parent) if not f.startswith('.tmp_')] == ['ck.bin']


# ---------------------------------------------------------------------- sampler, seeds

@pytest.mark.parametrize('n,world', [(6, 1), (7, 2), (5, 3), (1, 2)])
def test_epoch_sampler_order_is_distributed_samplers(n, world):
    from torch.utils.data import DistributedSampler
    for rank in range(world):
        for epoch in (0, 3):
            ref = DistributedSampler(range(n), num_replicas=world, rank=rank, shuffle=True,
                                     seed=14159265, drop_last=False)
            ref.set_epoch(epoch)
            s = EpochSampler(n, world, rank, 14159265, 'semi')
            s.set_epoch(epoch)
            items = list(s)
            assert [i for i, _ in items] == list(ref) and len(s) == len(ref)
            s.set_epoch(epoch, start=1)                  # resume: skips without loading
            assert list(s) == items[1:] and len(s) == len(items) - 1
            seeds = [x for _, x in items]
            assert len(set(seeds)) == len(seeds)


def test_seeded_samples_are_independent_of_history():
    """A sample depends only on its (index, seed), not on what was drawn before, and loading
    it leaves the caller's RNG streams where they were (num_workers 0 loads in the trainer)."""
    class Draw(torch.utils.data.Dataset):
        def __len__(self):
            return 4

        def __getitem__(self, i):
            return torch.rand(2), float(np.random.rand()), random.random()
    ds = SeededSamples(Draw())
    torch.manual_seed(1)
    a = ds[(2, 99)]
    torch.rand(7)
    np.random.rand(3)
    b = ds[(2, 99)]
    assert torch.equal(a[0], b[0]) and a[1:] == b[1:]
    assert not torch.equal(a[0], ds[(2, 100)][0])
    torch.manual_seed(1)
    np.random.seed(1)
    expect = torch.rand(3), np.random.rand()
    torch.manual_seed(1)
    np.random.seed(1)
    ds[(0, 5)]
    assert torch.equal(torch.rand(3), expect[0]) and np.random.rand() == expect[1]


# ---------------------------------------------------------------------- kill and resume

@pytest.fixture(scope='module')
def tdata(tmp_path_factory):
    root = tmp_path_factory.mktemp('tdata')
    d, y = training_layouts(root, 2, 1, frames=5, height=H, width=W + 8)
    flags = ['--stage', '3', '--crop_size', '32', '-b', '2', '-i', str(ITS), '--steps', '3',
             '--davis_root', d['root'], '--yv_root', y['root'], '--davis_data', d['split'],
             '--yv_data', y['split'], '--semi', '--use_teacher', '--end_warm', '0',
             '--log_every', '1', '--save_every', '1000']
    return {'flags': flags}


def _env():
    return dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1', PYTHONUNBUFFERED='1')


def _train(flags, timeout=300):
    return subprocess.run([sys.executable, 'train.py'] + [str(f) for f in flags], cwd=ROOT,
                          env=_env(), capture_output=True, text=True, timeout=timeout)


def _run_dir(save_root):
    runs = os.listdir(save_root)
    assert len(runs) == 1, runs
    return os.path.join(save_root, runs[0])


def _digests(path):
    """{tensor name: sha256 of name, dtype, shape and bytes}: equal digests = equal tensors."""
    out = {}
    for k, v in torch.load(path, map_location='cpu').items():
        h = hashlib.sha256(f'{k}|{v.dtype}|{tuple(v.shape)}'.encode())
        h.update(v.contiguous().numpy().tobytes())
        out[k] = h.hexdigest()
    return out


def _final(save_root):
    """Digests of the final student and teacher of a run; the run's big files are removed."""
    d = _run_dir(save_root)
    name = os.path.basename(d)
    res = {w: _digests(os.path.join(d, f'{name}_{ITS}{s}.pth'))
           for w, s in (('student', ''), ('teacher', '_tea'))}
    shutil.rmtree(d)
    return res


@pytest.fixture
def ckpt_dir(tmp_path):
    """Where the runs write their (~1 GB) checkpoints: tmpfs when it has room (the fsyncs of
    gigabytes on a shared disk would dominate the test's time), else tmp_path."""
    base = '/dev/shm'
    try:
        st = os.statvfs(base)
        roomy = st.f_bavail * st.f_frsize > 8 * 2 ** 30 and os.access(base, os.W_OK)
    except OSError:
        roomy = False
    if not roomy:
        yield tmp_path
        return
    import tempfile
    d = tempfile.mkdtemp(prefix='stcn_resume_test_', dir=base)
    try:
        yield Path(d)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _assert_same(a, b):
    for part in ('student', 'teacher'):
        assert a[part].keys() == b[part].keys()
        diff = [k for k in a[part] if a[part][k] != b[part][k]]
        assert not diff, f'{part}: {len(diff)} tensors differ, e.g. {diff[:3]}'


def _resume_checkpoint(save_root):
    d = _run_dir(save_root)
    files = os.listdir(d)
    ck = [f for f in files if f.endswith('_checkpoint.pth')]
    assert len(ck) == 1 and not [f for f in files if re.search(r'_\d+(_tea)?\.pth$', f)], \
        files                                  # a stop saves the resume checkpoint only
    return os.path.join(d, ck[0])


def _run_until(cmd, when, act):
    """Run `cmd` from the repository root; once a line starting with `when` is logged, call
    act(process), then wait for the end: (exit status, stdout, stderr)."""
    p = subprocess.Popen(cmd, cwd=ROOT, env=_env(), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, start_new_session=True)
    watchdog = threading.Timer(400, p.kill)
    watchdog.start()
    seen = []
    try:
        for line in p.stdout:
            seen.append(line)
            if line.startswith(when):
                act(p)
                break
        out, err = p.communicate(timeout=400)
    finally:
        watchdog.cancel()
    return p.returncode, ''.join(seen) + out, err


def _train_signalled(flags, sig, when):
    """train.py, with `sig` sent to its whole process group (the trainer and its data
    workers, as Ctrl-C or `kill -- -PGID` do) once a line starting with `when` is logged."""
    return _run_until([sys.executable, 'train.py'] + [str(f) for f in flags], when,
                      lambda p: os.killpg(p.pid, sig))


@pytest.mark.slow
def test_kill_and_resume_twice_gives_identical_weights(tdata, ckpt_dir):
    """Uninterrupted run A vs. the chain B -> C -> D with the same seed:
    B: Ctrl-C (SIGINT to its process group) during iteration 1: it stops right after it,
       where the data switches from labeled-only to semi triplets;  exit 130;
    C: resumes B with one data worker; a real SIGTERM to its process group once iteration 2
       is logged (it stops after 2 or 3); exit 143;
    D: resumes C without workers, crosses an epoch boundary, finishes.
    Every tensor of D's final student and teacher equals A's."""
    flags = tdata['flags']
    r = _train(flags + ['--num_workers', '0', '--id', 'A', '--save_root', ckpt_dir / 'a'])
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert 'data: semi' in r.stdout and 'epoch 1: ' in r.stdout      # crosses an epoch
    uninterrupted = _final(ckpt_dir / 'a')

    # SIGINT as soon as the loop starts: it lands during iteration 1 (seconds long)
    code, out, err = _train_signalled(
        flags + ['--num_workers', '1', '--id', 'B', '--save_root', ckpt_dir / 'b'],
        signal.SIGINT, 'data: base')
    assert code == 130, out[-2000:] + err[-2000:]
    assert 'stopped by SIGINT after iteration 1' in out and 'Traceback' not in err
    ck_b = _resume_checkpoint(ckpt_dir / 'b')
    ck = torch.load(ck_b, weights_only=True)                          # plain tensors/lists
    assert ck['it'] == 1 and ck['loop']['mode'] == 'base' and ck['teacher'] is not None
    assert len(ck['rng']) == 1 and set(ck['rng'][0]) >= {'torch', 'numpy', 'random'}

    code, out, err = _train_signalled(
        flags + ['--num_workers', '1', '--id', 'C', '--save_root', ckpt_dir / 'c',
                 '--load_model', ck_b], signal.SIGTERM, f'it 2/{ITS}')
    assert code == 143, out[-2000:] + err[-2000:]
    assert 'at iteration 1' in out and 'stopped by SIGTERM after iteration' in out
    assert 'Traceback' not in err
    shutil.rmtree(ckpt_dir / 'b')
    ck_c = _resume_checkpoint(ckpt_dir / 'c')
    ck = torch.load(ck_c, weights_only=True)
    assert 2 <= ck['it'] < ITS and ck['loop']['mode'] == 'semi'
    assert ck['loop']['epoch'] == 0 and ck['loop']['pos'] == ck['it'] - 1

    r = _train(flags + ['--num_workers', '0', '--id', 'D', '--save_root', ckpt_dir / 'd',
                        '--load_model', ck_c])
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert f'at iteration {ck["it"]}' in r.stdout and 'it 1/' not in r.stdout
    _assert_same(uninterrupted, _final(ckpt_dir / 'd'))


def _rank_pids(pid):
    """{rank: process id} of the train.py children of `pid` (Linux /proc)."""
    out = {}
    for d in filter(str.isdigit, os.listdir('/proc')):
        try:
            with open(f'/proc/{d}/stat') as f:
                parent = int(f.read().rsplit(')', 1)[1].split()[1])
            with open(f'/proc/{d}/cmdline', 'rb') as f:
                is_train = b'train.py' in f.read()
            with open(f'/proc/{d}/environ', 'rb') as f:
                env = dict(v.split(b'=', 1) for v in f.read().split(b'\0') if b'=' in v)
        except (OSError, ValueError, IndexError):
            continue
        if parent == pid and is_train and b'RANK' in env:
            out[int(env[b'RANK'])] = int(d)
    return out


@pytest.mark.slow
def test_torchrun_stop_saves_every_ranks_state(tdata, ckpt_dir):
    """Two processes under torchrun stop after the same iteration when one of them is
    interrupted; no rank exits before the main one has written the checkpoint (else torchrun
    kills it mid-write), which holds both ranks' RNG states."""
    flags = [str(f) for f in tdata['flags']] + ['--num_workers', '0', '--id', 'T', '-b', '1',
                                                '--save_root', str(ckpt_dir / 't')]
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=2',
           '--master_port', str(29600 + os.getpid() % 300), 'train.py'] + flags
    # SIGINT to rank 0 alone (not to torchrun) once its loop starts, during iteration 1: the
    # ranks agree on the stop, so both stop after iteration 1 and exit with the stop's status
    _, out, err = _run_until(cmd, 'data: base',
                             lambda p: os.kill(_rank_pids(p.pid)[0], signal.SIGINT))
    log = out + err
    assert 'stopped by SIGINT after iteration 1' in log, log[-3000:]
    pids = set(re.findall(r'exitcode\s*:\s*130 \(pid: (\d+)\)', log))      # torchrun's summary
    assert len(pids) == 2, log[-3000:]                                  # both ranks: 130
    ck = torch.load(_resume_checkpoint(ckpt_dir / 't'), weights_only=True)
    assert ck['it'] == 1 and len(ck['rng']) == 2 and ck['loop']['world_size'] == 2
    assert not torch.equal(ck['rng'][0]['torch'], ck['rng'][1]['torch'])


def test_sigterm_after_a_saved_stop_ends_with_the_stop_status():
    """The race of the torchrun test made certain: a rank that is SIGTERMed while shutting
    down after its stop was saved exits with the stop's status (130), not killed (-15)."""
    r = _python('import os, signal, sys, time; from util.resume import end_on_sigterm\n'
                'end_on_sigterm(130); print("shutting down", flush=True)\n'
                'os.kill(os.getpid(), signal.SIGTERM); time.sleep(10); sys.exit(0)\n')
    assert (r.returncode, r.stdout) == (130, 'shutting down\n'), r.stderr[-2000:]


def test_sigterm_while_exiting_after_a_saved_stop_ends_with_the_stop_status():
    """The same race later on: run_main has returned the stop's status and the interpreter is
    exiting (here: inside an atexit hook) when torchrun's SIGTERM arrives. run_main keeps the
    ending train.py installed instead of restoring the default handler, which would die -15."""
    code = ('import atexit, os, signal, time\n'
            'from util.errors import run_main\n'
            'from util.resume import end_on_sigterm\n'
            'def main(argv):\n'
            '    end_on_sigterm(130)\n'
            '    atexit.register(lambda: (os.kill(os.getpid(), signal.SIGTERM), time.sleep(10)))\n'
            '    return 130\n'
            'run_main(main, [])\n')
    r = _python(code)
    assert r.returncode == 130, r.stderr[-2000:]


def _python(code):
    """Run `code` in a fresh interpreter in the repository."""
    return subprocess.run([sys.executable, '-c', code], cwd=ROOT, env=_env(), text=True,
                          capture_output=True, timeout=60)


def test_data_error_mid_run_saves_the_resume_checkpoint_first(tdata, ckpt_dir, monkeypatch):
    """A frame that turns out unreadable after some training (here: the 3rd sample loaded)
    ends the run with its UserError, but only after the resume checkpoint of the last
    finished iteration is saved: fix the file, --load_model, nothing lost."""
    calls = {'n': 0}
    real = SeededSamples.__getitem__

    def flaky(self, item):
        calls['n'] += 1
        if calls['n'] == 3:
            raise UserError('/data/x/00003.jpg: cannot read image (image file is truncated)')
        return real(self, item)
    monkeypatch.setattr(SeededSamples, '__getitem__', flaky)
    flags = [str(f) for f in tdata['flags']] + ['--num_workers', '0', '--id', 'E',
                                                '--save_root', str(ckpt_dir / 'e')]
    flags[flags.index('-b') + 1] = '1'
    with pytest.raises(UserError, match='00003.jpg: cannot read image'):
        train.main(flags)
    ck = torch.load(_resume_checkpoint(ckpt_dir / 'e'), weights_only=True)
    assert ck['it'] == 2 and ck['loop']['pos'] == 1 and ck['loop']['mode'] == 'semi'


# ---------------------------------------------------------------------- eval --resume

@pytest.fixture
def fast_load(monkeypatch, net):
    monkeypatch.setattr(eval_driver, 'load_model', lambda path, device, amp=False: net)


def _generic_tree(root, pristine_videos):
    for v, src in pristine_videos.items():
        shutil.copytree(src['im'], root / 'JPEGImages' / v)
        os.makedirs(root / 'Annotations' / v)
        shutil.copy(src['gt'] / '00001.png', root / 'Annotations' / v / '00001.png')


@pytest.fixture(scope='module')
def davis(tmp_path_factory):
    from scripts.data.synthetic_data import generate
    root = tmp_path_factory.mktemp('evdata')
    return generate(root, 'davis', videos=3, frames=4, height=H, width=W, objects=2, seed=2,
                    val_videos=2)


def _mtimes(folder):
    return {p.name: p.stat().st_mtime_ns for p in sorted(folder.iterdir())}


def test_generic_resume_after_a_failed_video(davis, fast_load, tmp_path):
    """Video b has a truncated frame: the run stops with an error after a's PNGs are all
    written (complete, no temp files) and none of b's. With b repaired, --resume skips a
    (not rewritten) and does b; a damaged output PNG makes its video run again."""
    tv = Path(davis['trainval'])
    src = {v: {'im': tv / 'JPEGImages' / '480p' / s, 'gt': tv / 'Annotations' / '480p' / s}
           for v, s in (('a', 'davis_001'), ('b', 'davis_002'))}
    data = tmp_path / 'data'
    _generic_tree(data, src)
    bad = data / 'JPEGImages' / 'b' / '00002.jpg'
    good = bad.read_bytes()
    bad.write_bytes(good[:len(good) // 2])
    out = tmp_path / 'out'
    args = ['--model', 'x', '--data_path', str(data), '--output', str(out)]
    with pytest.raises(UserError, match='b/00002.jpg: cannot read image'):
        eval_generic.main(args)
    stems = ['00001', '00002', '00003']                    # from the first label on
    assert sorted(os.listdir(out)) == ['.settings.json', 'a'] and complete_pngs(out / 'a', stems)
    assert not [p for p in out.rglob('.tmp*')]
    before = _mtimes(out / 'a')
    bad.write_bytes(good)
    stats = eval_generic.main(args + ['--resume'])
    assert stats['skipped'] == 1 and stats['videos'] == 1 and stats['written'] == 3
    assert _mtimes(out / 'a') == before and complete_pngs(out / 'b', stems)
    stats = eval_generic.main(args + ['--resume'])
    assert stats['skipped'] == 2 and stats['written'] == 0
    png = out / 'b' / '00003.png'
    png.write_bytes(png.read_bytes()[:20])                 # a damaged output
    stats = eval_generic.main(args + ['--resume'])
    assert stats['skipped'] == 1 and stats['written'] == 3 and complete_pngs(out / 'b', stems)


def test_davis_and_intermediate_resume(davis, fast_load, tmp_path):
    out = tmp_path / 'd'
    args = ['--model', 'x', '--davis_path', davis['root'], '--output', str(out)]
    first = eval_davis.main(args + ['--resume'])
    assert first['skipped'] == 0 and first['videos'] == 2 and first['written'] == 8
    again = eval_davis.main(args + ['--resume'])
    assert again['skipped'] == 2 and again['written'] == 0
    os.remove(out / 'davis_002' / '00000.png')
    third = eval_davis.main(args + ['--resume'])
    assert third['skipped'] == 1 and third['written'] == 4
    # an intermediate pass (reversed): every frame from the first label met (00002) back
    yv = tmp_path / 'yv'
    sparse = tmp_path / 'sparse'
    tv = davis['trainval']
    for v in ('davis_001', 'davis_002'):
        shutil.copytree(os.path.join(tv, 'JPEGImages', '480p', v),
                        yv / 'train_480p' / 'JPEGImages' / v)
        for f in ('00000.png', '00002.png'):
            os.makedirs(sparse / v, exist_ok=True)
            shutil.copy(os.path.join(tv, 'Annotations', '480p', v, f), sparse / v / f)
    iargs = ['--model', 'x', '--yv_path', str(yv), '--output', str(tmp_path / 'i'),
             '--data_file', str(sparse), '--reverse', '--res', '-1']
    s1 = eval_youtube_phase2.main(iargs + ['--resume'])
    written = sorted(os.listdir(tmp_path / 'i' / 'Annotations' / 'davis_001'))
    assert written == ['00000.png', '00001.png', '00002.png'] and s1['written'] == 6
    s2 = eval_youtube_phase2.main(iargs + ['--resume'])
    assert s2['skipped'] == 2 and s2['written'] == 0


def test_youtube_benchmark_resume(fast_load, tmp_path):
    """YouTube-VOS valid: the meta.json frames from each object's first label are expected."""
    from scripts.data.synthetic_data import generate
    y = generate(tmp_path, 'youtube', videos=1, frames=4, height=H, width=W, objects=2,
                 seed=3, val_videos=2)
    out = tmp_path / 'o'
    args = ['--model', 'x', '--yv_path', y['root'], '--output', str(out), '--res', '-1']
    s1 = eval_youtube.main(args + ['--resume'])
    assert s1['skipped'] == 0 and s1['videos'] == 2 and s1['written'] > 0
    s2 = eval_youtube.main(args + ['--resume'])
    assert s2['skipped'] == 2 and s2['written'] == 0
    video = sorted(os.listdir(out / 'Annotations'))[2]          # [0]: .settings.json
    victim = sorted((out / 'Annotations' / video).iterdir())[-1]
    os.remove(victim)
    s3 = eval_youtube.main(args + ['--resume'])
    assert s3['skipped'] == 1 and s3['videos'] == 1 and victim.exists()
