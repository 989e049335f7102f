"""The original's intermediate inference: eval_youtube_phase2.py and its command lines, the
YouTube-style memory schedule for DAVIS, both spellings of the DAVIS root. Synthetic trees
(scripts.data.synthetic_data), seeded random network, CPU.
"""
import filecmp
import os
import shutil
import subprocess
import sys

import pytest

import eval_driver
import eval_youtube
import eval_youtube_bank
import eval_youtube_phase2
import video_runner
import phase2.bank as bank
from scripts.data import synthetic_data

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PASSES = {'left': [], 'leftsecgt': ['--only_sec_gt'], 'right': ['--reverse'],
          'rightsecgt': ['--reverse', '--only_sec_gt']}


@pytest.fixture(scope='module')
def davis12(tmp_path_factory):
    """A DAVIS tree with a 12-frame training video labeled (sparse folder) at frames 2 and 9."""
    root = tmp_path_factory.mktemp('d12')
    d = synthetic_data.generate(root, 'davis', videos=2, frames=12, height=32, width=48, objects=2,
                           seed=5, val_videos=1)
    ann = os.path.join(d['trainval'], 'Annotations', '480p')
    video = sorted(os.listdir(ann))[0]
    sparse = root / 'sparse' / video
    os.makedirs(sparse)
    for i in (2, 9):
        shutil.copyfile(os.path.join(ann, video, f'{i:05d}.png'), sparse / f'{i:05d}.png')
    return {'root': d['root'], 'sparse': str(root / 'sparse'), 'video': video}


@pytest.fixture
def memory_log(monkeypatch, net):
    """Every segment_video call's (video, permanent memory frames in processing order)."""
    log = []
    real = video_runner.segment_video

    def spy(*args, **kw):
        out = real(*args, **kw)
        log.append((args[1].name, args[2].mem_style, out[3].mem_frames))
        return out
    monkeypatch.setattr(video_runner, 'segment_video', spy)
    monkeypatch.setattr(bank, 'segment_video', spy)
    monkeypatch.setattr(eval_driver, 'load_model', lambda path, device, amp=False: net)
    return log


@pytest.mark.usefixtures('one_thread')
@pytest.mark.parametrize('spelling', ['DAVIS', 'DAVIS/2017'])
def test_davis_memory_schedule_is_the_originals(davis12, memory_log, tmp_path, spelling):
    """Labels 2 and 9 of a 12-frame video, --mem_every 5: a frame enters memory 5 frames after
    the last memory frame, counted from the label where propagation (re)starts: [2, 7, 9] in
    processing order both ways (time [9, 4, 2] backward), not the benchmark's index % 5 rule
    ([2, 5, 9, 10]); one label: [9] (time 9 forward, time 2 backward)."""
    davis_path = os.path.join(os.path.dirname(davis12['root']), spelling)
    flags = ['--model', 'unused.pth', '--mem_every', '5', '--output_all', '--davis',
             '--davis_path', davis_path, '--data_file', davis12['sparse'], '--device', 'cpu']
    want = {'left': [2, 7, 9], 'right': [2, 7, 9], 'leftsecgt': [9], 'rightsecgt': [9]}
    for name, extra in PASSES.items():
        memory_log.clear()
        eval_youtube_phase2.main(flags + extra + ['--output', str(tmp_path / name)])
        assert memory_log == [(davis12['video'], 'youtube', want[name])], name
    # the bank of DAVIS: the same schedule; each pass stops where the merge stops using it
    memory_log.clear()
    eval_youtube_bank.main(flags + ['--output', str(tmp_path / 'bank')])
    assert [m[1:] for m in memory_log] == [('youtube', [2]), ('youtube', [9]),
                                           ('youtube', [2]), ('youtube', [9])]
    assert sorted(os.listdir(tmp_path / 'bank' / 'Annotations' / davis12['video'])) == \
        [f'{i:05d}.png' for i in range(12)]


def _pngs(folder):
    out = []
    for d, _, files in os.walk(folder):
        out += [os.path.relpath(os.path.join(d, f), folder) for f in files if f.endswith('.png')]
    return sorted(out)


def _same_trees(a, b):
    names = _pngs(a)
    assert names and names == _pngs(b), (a, b)
    for n in names:
        assert filecmp.cmp(os.path.join(a, n), os.path.join(b, n), shallow=False), n
    return names


def _env(**extra):
    # one thread everywhere: the same convolution rounding in every process; no GPU
    return dict(os.environ, OMP_NUM_THREADS='1', CUDA_VISIBLE_DEVICES='', **extra)


@pytest.mark.slow
def test_original_command_lines_give_run_intermediate_pngs(tmp_path, ckpt):
    """The original's scripts' command lines, run verbatim from a folder whose ../YouTube and
    ../DAVIS are synthetic trees (their defaults: ../YouTube, ../DAVIS/2017, labels under
    phase2/), write the PNGs that `run_intermediate.sh youtube|davis` (DAVIS_ROOT=../DAVIS)
    and the per-pass scripts write."""
    y = synthetic_data.generate(tmp_path, 'youtube', videos=2, frames=6, height=32, width=48,
                           objects=2, seed=6, val_videos=0)
    d = synthetic_data.generate(tmp_path, 'davis', videos=3, frames=7, height=32, width=48,
                           objects=2, seed=7, val_videos=1)
    work = tmp_path / 'work'
    os.makedirs(work / 'saves')
    shutil.copyfile(ckpt, work / 'saves' / 'phase1.pth')
    script = os.path.join(ROOT, 'eval_youtube_phase2.py')
    for name, extra in PASSES.items():           # the original's eight command lines
        for cmd in (['--model', 'saves/phase1.pth', '--output',
                     f'../vos_phase2/phase1_{name}_480p', '--output_all', '--res', '-1'],
                    ['--model', 'saves/phase1.pth', '--output',
                     f'../vos_phase2/phase1_{name}_davis', '--mem_every', '5', '--output_all',
                     '--davis']):
            run = subprocess.run([sys.executable, script] + cmd + extra, cwd=work, env=_env(),
                                 capture_output=True, text=True)
            assert run.returncode == 0, run.stderr[-2000:]
    ours = tmp_path / 'ours'
    env = _env(MODEL=str(work / 'saves' / 'phase1.pth'), PYTHON=sys.executable,
               OUT_ROOT=str(ours), YV_ROOT=y['root'], DAVIS_ROOT=d['root'])
    for dataset in ('youtube', 'davis'):
        run = subprocess.run(['bash', 'run_intermediate.sh', dataset], cwd=ROOT, env=env,
                             capture_output=True, text=True)
        assert run.returncode == 0, run.stderr[-2000:]
        assert 'eval_youtube_phase2.py' in run.stdout and '--output_all' in run.stdout
    for suffix in ('480p', 'davis'):
        for name in PASSES:
            _same_trees(tmp_path / 'vos_phase2' / f'phase1_{name}_{suffix}',
                        ours / f'phase1_{name}_{suffix}')
    # a per-pass script of the original's layout, DAVIS root spelled the original's way
    run = subprocess.run(['bash', 'run_davis_phase2/run_eval_davis_phase2_rightsecgt.sh'],
                         cwd=ROOT, env=dict(env, OUT_ROOT=str(tmp_path / 'one'),
                                            DAVIS_ROOT=os.path.join(d['root'], '2017')),
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    _same_trees(tmp_path / 'one' / 'phase1_rightsecgt_davis',
                ours / 'phase1_rightsecgt_davis')


def test_eval_youtube_phase2_defaults(tmp_path, monkeypatch):
    """Always intermediate inference; the original's frame / label roots, --mem_every 1,
    --output_all accepted; eval_youtube.py is the benchmark and names the command to use."""
    from dataset.two_shot_split import prepare_sparse_gt
    from util.errors import UserError
    seen = {}

    def fake_run(net, dataset, out_dir, config, **kw):
        seen.update(vars(config), **kw, dataset=dataset)
        return {}
    monkeypatch.setattr(eval_driver, 'run_dataset', fake_run)
    monkeypatch.setattr(eval_driver, 'load_model', lambda path, device, amp=False: None)
    y = synthetic_data.generate(tmp_path, 'youtube', videos=2, frames=3, height=32, width=48,
                           objects=1, seed=8, val_videos=1)
    prepare_sparse_gt(os.path.join(y['train'], 'Annotations'), y['split'],
                      os.path.join(y['root'], 'phase2', 'yv_gt'))
    base = ['--yv_path', y['root'], '--output', str(tmp_path / 'o'), '--output_all']
    for res, frames, labels in (([], 'train', 'yv_gt'), (['--res', '-1'], 'train_480p',
                                                          'yv_gt_480p')):
        eval_youtube_phase2.main(base + res)
        ds = seen['dataset']
        assert type(ds).__name__ == 'IntermediateDataset' and not ds.reverse
        assert ds.image_dir == os.path.join(y['root'], frames, 'JPEGImages')
        files = [f for v in ds.videos for f in ds.label_files[v]]
        assert files and all(f.startswith(os.path.join(y['root'], 'phase2', labels, ''))
                             for f in files)
        assert (seen['mem_style'], seen['mem_every']) == ('youtube', 1)
    with pytest.raises(UserError, match='--reverse is not a flag of eval_youtube.py .*: use '
                                        'eval_youtube_phase2.py'):
        eval_youtube.main(base + ['--reverse'])
    with pytest.raises(UserError, match='use eval_youtube_bank.py'):
        eval_youtube.main(base + ['--bank'])
    eval_youtube.main(base[:-1] + ['--split', 'valid'])          # no flag: the benchmark
    assert type(seen['dataset']).__name__ == 'YouTubeVOSTestDataset'
