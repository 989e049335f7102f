"""eval_youtube_bank.py: the merged pseudo-label bank in one run must be byte for byte what
the four full intermediate passes and the merge (phase2/merge.py) write, with about half the
frames segmented. Synthetic DAVIS / YouTube trees (scripts.data.synthetic_data), seeded random
network, CPU.
"""
import filecmp
import os
import re
import shutil
import subprocess
import sys

import pytest

import eval_driver
import eval_youtube_bank
import eval_youtube_phase2
import video_runner
import phase2.bank as bank
from inference_core import InferenceConfig
from phase2 import intermediate
from phase2.merge import merge
from scripts.data import synthetic_data
from util.errors import UserError

pytestmark = pytest.mark.usefixtures('one_thread')

FRAMES = 14
# video -> labeled time positions: apart, at both ends, adjacent, one label, one apart
LABELS = [(3, 10), (0, 13), (6, 7), (5,), (4, 6)]
PASSES = {'left': [], 'leftsecgt': ['--only_sec_gt'], 'right': ['--reverse'],
          'rightsecgt': ['--reverse', '--only_sec_gt']}


@pytest.fixture(autouse=True)
def _one_network(monkeypatch, net):
    monkeypatch.setattr(eval_driver, 'load_model', lambda path, device, amp=False: net)


def sparse_labels(annotations, out, videos):
    """<out>/<video>/<png> for the LABELS positions of each video (copies of the truth)."""
    for video, lab in zip(videos, LABELS):
        names = sorted(os.listdir(os.path.join(annotations, video)))
        os.makedirs(os.path.join(out, video))
        for i in lab:
            shutil.copyfile(os.path.join(annotations, video, names[i]),
                            os.path.join(out, video, names[i]))
    return out


@pytest.fixture(scope='module')
def trees(tmp_path_factory):
    root = tmp_path_factory.mktemp('bank')
    d = synthetic_data.generate(root, 'davis', videos=len(LABELS) + 1, frames=FRAMES, height=48,
                           width=64, objects=2, seed=3, val_videos=1)
    y = synthetic_data.generate(root, 'youtube', videos=len(LABELS), frames=FRAMES, height=48,
                           width=64, objects=2, seed=4, val_videos=1)
    ann = os.path.join(d['trainval'], 'Annotations', '480p')
    dv = sorted(os.listdir(ann))[:len(LABELS)]
    yv = sorted(os.listdir(os.path.join(y['train_480p'], 'Annotations')))
    return {
        'davis': ['--davis', '--davis_path', d['root'], '--mem_every', '5', '--data_file',
                  sparse_labels(ann, str(root / 'davis_sparse'), dv)],
        'youtube': ['--yv_path', y['root'], '--res', '-1', '--data_file',
                    sparse_labels(os.path.join(y['train_480p'], 'Annotations'),
                                  str(root / 'yv_sparse'), yv)],
    }


def four_passes_and_merge(tmp, ckpt, flags):
    outs = {}
    for name, extra in PASSES.items():
        outs[name] = str(tmp / name)
        eval_youtube_phase2.main(['--model', ckpt, '--output', outs[name]] + flags + extra)
    sparse = flags[flags.index('--data_file') + 1]
    frames = (os.path.join(flags[flags.index('--davis_path') + 1], '2017', 'trainval',
                           'JPEGImages', '480p') if '--davis' in flags else
              os.path.join(flags[flags.index('--yv_path') + 1], 'train_480p', 'JPEGImages'))
    merge(sparse, outs['left'], outs['leftsecgt'], outs['right'], outs['rightsecgt'],
          str(tmp / 'merged'), frames_dir=frames, progress=False)
    return tmp / 'merged'


def videos_in(folder):
    """The video folders of an output (its hidden settings record and lock left out)."""
    return sorted(n for n in os.listdir(folder) if not n.startswith('.'))


def same_trees(a, b):
    """The video folders of two banks (their Annotations/, the original's layout) hold the
    same files, byte for byte."""
    a, b = os.path.join(a, 'Annotations'), os.path.join(b, 'Annotations')
    videos = videos_in(a)
    assert videos == videos_in(b)
    for v in videos:
        files = sorted(os.listdir(os.path.join(a, v)))
        assert files == sorted(os.listdir(os.path.join(b, v))), v
        match, mismatch, errors = filecmp.cmpfiles(os.path.join(a, v), os.path.join(b, v),
                                                   files, shallow=False)
        assert not mismatch and not errors, (v, mismatch, errors)
    return videos


@pytest.mark.parametrize('mode,extra', [('davis', []), ('youtube', []),
                                        ('davis', ['--include_last', '--mem_every', '3',
                                                  '--exact_readout'])])
def test_bank_equals_four_passes_and_merge(tmp_path, ckpt, trees, mode, extra):
    flags = trees[mode] + extra
    merged = four_passes_and_merge(tmp_path, ckpt, flags)
    stats = eval_youtube_bank.main(['--model', ckpt, '--output', str(tmp_path / 'bank')]
                              + flags)
    videos = same_trees(merged, tmp_path / 'bank')
    assert len(videos) == len(LABELS)
    assert stats['written'] == FRAMES * len(LABELS)
    # the four full passes: 2T + 2 frames for two labels, 2T + 2 for one (both passes pairs)
    assert stats['full_pass_frames'] == (2 * FRAMES + 2) * len(LABELS)
    # the bank: every frame once, plus each used pass's labeled frame again
    assert stats['frames'] <= (FRAMES + 2) * len(LABELS)
    assert os.listdir(tmp_path / 'bank') == ['Annotations']
    assert [f for f in os.listdir(tmp_path / 'bank' / 'Annotations')
            if f.startswith('.')] == ['.settings.json']


def test_bank_resume_redoes_only_missing_videos(tmp_path, ckpt, trees, monkeypatch):
    args = ['--model', ckpt, '--output', str(tmp_path / 'bank')] + trees['youtube']
    out = tmp_path / 'bank' / 'Annotations'
    eval_youtube_bank.main(args)
    videos = videos_in(out)
    shutil.rmtree(out / videos[1])
    os.remove(out / videos[2] / sorted(os.listdir(out / videos[2]))[-1])
    before = {v: os.stat(out / v).st_mtime_ns for v in videos if (out / v).exists()}
    done = []
    real = bank.bank_video
    monkeypatch.setattr(bank, 'bank_video',
                        lambda net, passes, *a, **kw: done.append(passes['left'].name)
                        or real(net, passes, *a, **kw))
    stats = eval_youtube_bank.main(args + ['--resume'])
    assert sorted(done) == [videos[1], videos[2]] and stats['skipped'] == len(videos) - 2
    assert videos_in(out) == videos
    for v in videos:
        assert len(os.listdir(out / v)) == FRAMES
        if v not in done:
            assert os.stat(out / v).st_mtime_ns == before[v]


def test_bank_killed_mid_video_leaves_nothing_half_written(tmp_path, ckpt, trees, monkeypatch):
    out = tmp_path / 'bank' / 'Annotations'
    calls = []

    def failing_write(path, mask, palette=None):
        calls.append(path)
        if len(calls) == FRAMES + 5:                # inside the second video
            raise KeyboardInterrupt
        return real(path, mask, palette)
    real = bank.write_mask
    monkeypatch.setattr(bank, 'write_mask', failing_write)
    with pytest.raises(KeyboardInterrupt):
        eval_youtube_bank.main(['--model', ckpt, '--output', str(out.parent)]
                          + trees['davis'])
    left = videos_in(out)
    assert len(left) == 1 and len(os.listdir(out / left[0])) == FRAMES   # first video whole


def test_bank_bad_input(tmp_path, ckpt, trees):
    flags = trees['youtube']
    with pytest.raises(SystemExit):                 # the bank runs all four passes
        eval_youtube_bank.main(['--model', ckpt, '--output', str(tmp_path / 'o'),
                                '--reverse'] + flags)
    # a video with three labeled frames: refused before anything is written
    sparse = tmp_path / 'sparse'
    shutil.copytree(flags[flags.index('--data_file') + 1], sparse)
    video = sorted(os.listdir(sparse))[-1]
    frames = os.path.join(flags[flags.index('--yv_path') + 1], 'train_480p', 'Annotations',
                          video)
    for name in sorted(os.listdir(frames))[:3]:
        shutil.copyfile(os.path.join(frames, name), sparse / video / name)
    flags = flags[:flags.index('--data_file')] + ['--data_file', str(sparse)]
    with pytest.raises(UserError, match=re.escape(f'{sparse / video}: video ') + '.* labeled'):
        eval_youtube_bank.main(['--model', ckpt, '--output', str(tmp_path / 'o')] + flags)
    assert not (tmp_path / 'o').exists()


def test_segment_video_stop_keeps_the_masks_before_it(net, trees):
    """segment_video(stop=s) gives the masks of the whole run for every frame before s."""
    flags = trees['davis']
    dataset = intermediate.build_dataset(eval_youtube_phase2.build_parser().parse_args(
        ['--output', 'x'] + flags), bank=False)
    video = dataset[0]
    whole, n_whole, _, _ = video_runner.segment_video(net, video, InferenceConfig(mem_every=5))
    for stop in (video.labels[0].index + 1, video.labels[-1].index, FRAMES - 2):
        part, n, _, _ = video_runner.segment_video(net, video, InferenceConfig(mem_every=5),
                                                 stop=stop)
        assert sorted(part) == [i for i in sorted(whole) if i < stop]
        assert n == stop - video.labels[0].index < n_whole
        for i, m in part.items():
            assert (m == whole[i]).all(), (stop, i)


def test_run_intermediate_bank_step_on_two_gpus(tmp_path, ckpt, trees, repo_root):
    """`GPUS=0,1 bash run_intermediate.sh youtube bank` writes the bank where the merge step
    would, in two processes sharing the videos (--shard 0/2, 1/2; on CPU here)."""
    flags = trees['youtube']
    env = dict(os.environ, MODEL=ckpt, PYTHON=sys.executable, OUT_ROOT=str(tmp_path / 'vos'),
               GPUS='0,1',
               YV_ROOT=flags[flags.index('--yv_path') + 1],
               YV_SPARSE=flags[flags.index('--data_file') + 1], EVAL_ARGS='--device cpu',
               OMP_NUM_THREADS='1')   # as in this process (one_thread): same rounding
    run = subprocess.run(['bash', 'run_intermediate.sh', 'youtube', 'bank'], cwd=repo_root,
                         env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert 'eval_youtube_bank.py --model ' in run.stdout
    assert '--output ' + str(tmp_path / 'vos' / 'phase1_merge_480p') in run.stdout
    assert '--shard 0/2: 3 videos' in run.stdout and '--shard 1/2: 2 videos' in run.stdout
    eval_youtube_bank.main(['--model', ckpt, '--output', str(tmp_path / 'bank')] + flags)
    assert len(same_trees(tmp_path / 'vos' / 'phase1_merge_480p', tmp_path / 'bank')) == \
        len(LABELS)


def test_shard_flag(tmp_path, ckpt, trees):
    flags = ['--model', ckpt] + trees['youtube']
    for bad in ('2/2', '1', 'a/2', '-1/2'):
        with pytest.raises(SystemExit):
            eval_youtube_bank.build_parser().parse_args(['--output', 'x', '--shard', bad])
    with pytest.raises(UserError, match='--zip with --shard'):
        eval_youtube_phase2.main(['--output', str(tmp_path / 'z'), '--zip', '--shard', '0/2',
                                  '--model', ckpt] + trees['youtube'])
    done = []
    for i in range(3):
        s = eval_youtube_bank.main(flags + ['--output', str(tmp_path / 'out'),
                                    '--shard', f'{i}/3'])
        done.append(videos_in(tmp_path / 'out' / 'Annotations'))
        assert s['written'] == FRAMES * len(range(i, len(LABELS), 3))
    videos = done[-1]
    assert len(videos) == len(LABELS)
    assert done[0] == videos[0::3] and done[1] == sorted(videos[0::3] + videos[1::3])


def _session_pids(sid):
    pids = []
    for d in os.listdir('/proc'):
        if d.isdigit():
            try:
                with open(f'/proc/{d}/stat') as f:
                    fields = f.read().rsplit(')', 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == sid and fields[0] != 'Z':      # session id, not a zombie
                pids.append(int(d))
    return pids


def _default_sigint():
    """In the child: SIGINT at its default, as in a user's shell. An earlier in-process test
    can leave it ignored in pytest, and a shell started with SIGINT ignored cannot trap it."""
    import signal
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.skipif(not os.path.isdir('/proc'), reason='needs /proc')
def test_run_intermediate_ctrl_c_stops_every_shard(tmp_path, ckpt, trees, repo_root):
    """Ctrl-C (SIGINT to the whole process group) stops both shard processes, which a
    non-interactive shell starts with SIGINT ignored, and the script fails."""
    import signal
    import time
    flags = trees['youtube']
    env = dict(os.environ, MODEL=ckpt, PYTHON=sys.executable, OUT_ROOT=str(tmp_path / 'vos'),
               GPUS='0,1', YV_ROOT=flags[flags.index('--yv_path') + 1],
               YV_SPARSE=flags[flags.index('--data_file') + 1], EVAL_ARGS='--device cpu',
               OMP_NUM_THREADS='1', PYTHONUNBUFFERED='1')
    proc = subprocess.Popen(['bash', 'run_intermediate.sh', 'youtube', 'left'], cwd=repo_root,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True,
                            preexec_fn=_default_sigint)
    seen = ''
    while seen.count('videos') < 2:                     # both shards have started work
        line = proc.stdout.readline()
        assert line, seen
        seen += line if '--shard' in line else ''
    os.killpg(proc.pid, signal.SIGINT)
    out = proc.communicate(timeout=60)[0]
    assert proc.returncode != 0
    deadline = time.time() + 10
    while _session_pids(proc.pid) and time.time() < deadline:
        time.sleep(0.2)
    assert not _session_pids(proc.pid), out
    assert 'interrupted by SIGTERM' in out and 'failed' in out


def test_bank_corrupt_frame_names_the_file_and_keeps_finished_videos(tmp_path, ckpt, trees):
    """A frame of the third video truncated after its header (found only when decoded): one
    UserError naming it; the videos before it are complete, nothing of the third (or a
    temporary folder) is left. A header that does not parse fails before any output."""
    flags = trees['youtube']
    root = tmp_path / 'YouTube'
    shutil.copytree(flags[flags.index('--yv_path') + 1], root)
    frames = root / 'train_480p' / 'JPEGImages'
    video = sorted(os.listdir(frames))[2]
    bad = frames / video / sorted(os.listdir(frames / video))[7]
    raw = bad.read_bytes()
    bad.write_bytes(raw[:200])                               # no complete header
    out = tmp_path / 'bank'
    with pytest.raises(UserError, match=re.escape(str(bad))):
        eval_youtube_bank.main(['--model', ckpt, '--output', str(out), '--yv_path',
                           str(root)] + flags[flags.index('--res'):])
    assert not out.exists()
    bad.write_bytes(raw[:len(raw) * 3 // 4])                 # truncated JPEG data
    flags = ['--yv_path', str(root)] + flags[flags.index('--res'):]
    with pytest.raises(UserError, match=re.escape(str(bad))):
        eval_youtube_bank.main(['--model', ckpt, '--output', str(out)] + flags)
    done = videos_in(out / 'Annotations')
    assert done == sorted(os.listdir(frames))[:2]
    assert all(len(os.listdir(out / 'Annotations' / v)) == FRAMES for v in done)
