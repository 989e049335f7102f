"""Data-wait logging in training (progress line, TensorBoard, the speed line at start),
scripts/bench/data.py, and that scripts/gpu_check.sh's commands parse (it runs on a GPU only)."""
import contextlib
import glob
import io
import json
import os
import re
import shlex

import pytest
import torch

import train
from dataset.sampling import LOAD_KEY, SeededSamples
from util.speed import SpeedMeter, workers_needed
from helpers import NO_SUBSETS, training_layouts

pytestmark = pytest.mark.usefixtures('one_thread')
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_workers_needed_and_meter():
    assert workers_needed(0.3, 4, 0.5) == 3          # 1.2 s of loading per 0.5 s step
    assert workers_needed(0.01, 4, 1.0) == 1
    m = SpeedMeter(batch_size=2, num_workers=4)
    m.add(0.1, 0.3, [0.2, 0.4])
    m.add(0.3, 0.3, [0.3, 0.3])
    assert m.samples_per_worker() == pytest.approx(1 / 0.3)
    assert m.step_seconds() == pytest.approx(0.3)
    assert m.wait_share() == pytest.approx(0.4 / 1.0)
    line = m.summary()
    assert '3.33 samples/s per worker (4 workers: 13.33 samples/s)' in line
    assert 'waiting for data 40 %' in line and 'needs >= 2 workers' in line
    slow = SpeedMeter(batch_size=4, num_workers=1)
    slow.add(0.0, 0.1, [0.1] * 4)
    assert 'needs >= 4 workers (more than --num_workers)' in slow.summary()


def test_seeded_samples_carry_their_load_time():
    class Two(torch.utils.data.Dataset):
        def __len__(self):
            return 2

        def __getitem__(self, i):
            return {'x': torch.zeros(1)}
    s = SeededSamples(Two())[(1, 5)]
    assert set(s) == {'x', LOAD_KEY} and s[LOAD_KEY] >= 0


@pytest.fixture(scope='module')
def tiny_data(tmp_path_factory):
    root = tmp_path_factory.mktemp('speed')
    d, y = training_layouts(root, 2, 1, frames=5, height=40, width=48)
    return root, d, y


def test_training_logs_data_wait(tiny_data):
    """Per-iteration data wait and its share in the progress line and TensorBoard, and the
    samples/s per worker next to the step rate after the first iterations."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    root, d, y = tiny_data
    save_root = os.path.join(str(root), 'saves')
    flags = ['--stage', '3', '--crop_size', '32', '-b', '2', '-i', '7', '--steps', '5',
             '--davis_root', d['root'], '--yv_root', y['root'], '--num_workers', '0',
             '--log_every', '2', '--save_every', '1000', '--save_root', save_root, *NO_SUBSETS]
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert train.main(flags) == 0
    out = buf.getvalue()
    speed = [ln for ln in out.splitlines() if ln.startswith('speed over')]
    assert len(speed) == 1, out[-2000:]
    m = re.search(r'data ([\d.]+) samples/s per worker .*training step ([\d.]+) s', speed[0])
    assert m and float(m.group(1)) > 0 and float(m.group(2)) > 0
    assert 'needs >= ' in speed[0] and '--num_workers 0' in speed[0]
    progress = [ln for ln in out.splitlines() if ln.startswith('it 4/7')]
    assert progress and 'time/data_wait' in progress[0] and 'time/data_share' in progress[0]
    share = float(re.search(r'time/data_share ([\d.e-]+)', progress[0]).group(1))
    assert 0 <= share <= 1
    events = glob.glob(os.path.join(save_root, '*', 'events.out.tfevents*'))
    acc = EventAccumulator(events[0])
    acc.Reload()
    tags = set(acc.Tags()['scalars'])
    assert {'train/time/data_wait', 'train/time/data_share', 'train/time/sample_load',
            'train/data/samples_per_s_per_worker'} <= tags
    assert all(0 <= e.value <= 1 for e in acc.Scalars('train/time/data_share'))
    assert [e.step for e in acc.Scalars('train/time/data_wait')] == [2, 4, 6]


def test_data_bench_every_mode(tmp_path, capsys):
    from scripts.bench import data
    out = tmp_path / 'data.json'
    assert data.main(['--height', '40', '--width', '48', '--crop', '32', '--batch', '2',
                      '--samples', '2', '--step_time', '0.01', '--workers', '0', '--batches',
                      '1', '--json', str(out)]) == 0
    res = json.loads(out.read_text())
    assert set(res['modes']) == set(data.MODES)
    for mode, r in res['modes'].items():
        assert r['samples_per_s_per_worker'] > 0 and len(r['sample_seconds']) == 2
        assert r['workers_needed'] == workers_needed(r['median_sample_s'], 2, 0.01)
        assert r['loader']['0'] > 0
    printed = capsys.readouterr().out
    assert printed.count('samples/s per worker') == len(data.MODES)


def gpu_check_commands():
    """(script, argv) of every bench script gpu_check.sh runs, its variables filled in."""
    text = open(os.path.join(ROOT, 'scripts', 'gpu_check.sh')).read().replace('\\\n', ' ')
    found = []
    for line in text.splitlines():
        m = re.search(r'-m scripts\.bench\.(\w+) (.*)$', line)
        if m and not line.lstrip().startswith('#'):
            args = m.group(2).replace('"$OUT"', '/tmp/o').replace('"$DEVICE"', 'cuda') \
                .replace('"$STEP_S"', '0.3')
            found.append((m.group(1), shlex.split(args)))
    return found


def test_gpu_check_commands_parse():
    import importlib
    cmds = gpu_check_commands()
    assert {c for c, _ in cmds} == {'amp', 'infer', 'train', 'data'}
    for script, argv in cmds:
        mod = importlib.import_module(f'scripts.bench.{script}')
        args = mod.parse_args(argv)
        assert getattr(args, 'device', 'cuda') == 'cuda' or script == 'data'
    text = open(os.path.join(ROOT, 'scripts', 'gpu_check.sh')).read()
    assert 'pytest -q -m cuda tests/inference/test_cuda.py' in text
