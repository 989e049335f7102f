"""scripts/experiments/two_shot_table.py end to end at its tiny preset (not its numbers)."""
import json
import importlib
import os

import pytest

from util.image_io import read_frame


@pytest.mark.slow
def test_tiny_preset_writes_json_png_and_every_arm(tmp_path, capsys, repo_root):
    t = _module(repo_root)
    out = tmp_path / 'exp'
    assert t.main(['--preset', 'tiny', '--seeds', '1', '--out', str(out), '--quiet']) == 0
    printed = capsys.readouterr().out
    result = json.loads((out / 'two_shot_table.json').read_text())
    assert set(result['rows']) == {'stage0', 'all', 'naive', 'phase1', 'phase2', 'bank'}
    for row in result['rows'].values():
        for m in t.MEASURES:
            assert 0.0 <= row[m]['mean'] <= 1.0 and len(row[m]['values']) == 1
    for label in ('STCN, all labels', 'naive two-shot', 'two-shot phase 1', 'two-shot phase 2',
                  'phase-1 bank vs hidden labels'):
        assert label in printed and label in result['table']
    png = read_frame(str(out / 'two_shot_table.png'))
    assert png.ndim == 3 and png.shape[0] > 100 and png.std() > 0
    # the schedule flags follow the budget: phase 1 switched to semi triplets at end_warm
    log = (out / 'logs' / 's0_train_phase1.log').read_text()
    assert 'data: semi' in log and result['schedule']['end_warm'] < result['params']['iters']
    # the data and the stage-0 weights are cached: one build each
    assert (out / 'cache' / 'stage0' / '.done.json').is_file()
    assert (out / 'cache' / 'stage0' / 's0.pth').is_file()


def _module(repo_root):
    return importlib.import_module('scripts.experiments.two_shot_table')


def test_schedule_scales_with_the_budget(repo_root):
    t = _module(repo_root)
    s = t.scaled_schedule(150000, t.ORIG, t.ORIG_ITERS)       # the original's own flags
    assert s == {'steps': 125000, 'bce_start_warm': 20000, 'bce_end_warm': 70000,
                 'end_warm': 70000, 'phase2_start_update': 70000, 'ema_alpha': 0.995}
    s = t.scaled_schedule(600, t.ORIG, t.ORIG_ITERS)
    assert (s['steps'], s['end_warm'], s['bce_start_warm'], s['bce_end_warm']) == (500, 280, 80, 280)
    assert s['ema_alpha'] == 0.8                                # time constant floor: 5 its
    s0 = t.scaled_schedule(1000, t.ORIG_S0, t.ORIG_S0['iters'])
    assert (s0['steps'], s0['bce_start_warm'], s0['bce_end_warm']) == (500, 67, 233)


def test_summary_mean_and_sample_std(repo_root):
    t = _module(repo_root)
    seeds = [{'all': {m: v for m in t.MEASURES}, 'stage0': None} for v in (0.5, 0.7, 0.9)]
    seeds[0]['stage0'] = {m: 0.1 for m in t.MEASURES}
    rows = t.summarise(seeds)
    assert set(rows) == {'stage0', 'all'}
    assert rows['all']['J&F-Mean']['mean'] == 0.7 and rows['all']['J&F-Mean']['std'] == 0.2
    assert rows['stage0']['J-Mean'] == {'mean': 0.1, 'std': 0.0, 'values': [0.1]}
    assert 'STCN, all labels' in t.format_table(rows, 3)
