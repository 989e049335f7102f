"""scripts/experiments/two_shot_table.py: its statistics, and end to end at its tiny preset
(not its numbers)."""
import json
import math
import os

import pytest

from scripts.experiments import two_shot_arms as arms
from scripts.experiments import two_shot_report as report
from scripts.experiments import two_shot_stats as stats
from scripts.experiments import two_shot_table as table
from util.image_io import read_frame


@pytest.mark.slow
def test_tiny_preset_writes_json_png_and_every_arm(tmp_path, capsys):
    out = tmp_path / 'exp'
    assert table.main(['--preset', 'tiny', '--seeds', '2', '--jobs', '2', '--out', str(out),
                   '--quiet']) == 0
    printed = capsys.readouterr().out
    result = json.loads((out / 'two_shot_table.json').read_text())
    assert set(result['rows']) == {'stage0', 'all', 'naive', 'phase1', 'phase2', 'bank'}
    for name, row in result['rows'].items():
        for m in arms.MEASURES:
            assert 0.0 <= row[m]['mean'] <= 1.0
            assert len(row[m]['values']) == (1 if name == 'stage0' else 2)
    for label in ('STCN, all labels', 'naive two-shot', 'two-shot phase 1', 'two-shot phase 2',
                  'phase-1 bank vs hidden labels', 'phase 2 − naive', 'phase 1 − naive',
                  'all labels − phase 2', 'evaluation-only sd'):
        assert label in printed and label in result['table']
    # paired differences: one value per seed, each the difference of that seed's two arms
    assert set(result['paired']) == {'phase2 - naive', 'phase1 - naive', 'all - phase2'}
    for r in result['per_seed']:
        i = result['seeds'].index(r['seed'])
        for m in arms.MEASURES:
            d = result['paired']['phase2 - naive'][m]
            assert d['values'][i] == pytest.approx(r['phase2'][m] - r['naive'][m], abs=1e-4)
            assert d['ci95'][0] <= d['mean'] <= d['ci95'][1]
        # the per-video scores read back reproduce the evaluator's J&F-Mean
        for arm in arms.ARMS:
            videos = r[arm]['videos']
            assert stats.jf_mean(videos, sorted(videos)) == pytest.approx(r[arm]['J&F-Mean'],
                                                                      abs=2e-3)
    boot = result['eval_bootstrap']
    assert boot['seed'] == 0 and boot['draws'] == stats.BOOT_DRAWS
    assert set(boot['sd']) == set(arms.ARMS) | set(result['paired'])
    png = read_frame(str(out / 'two_shot_table.png'))
    assert png.ndim == 3 and png.shape[0] > 100 and png.std() > 0
    # the schedule flags follow the budget: phase 1 switched to semi triplets at end_warm
    log = (out / 'logs' / 's0_train_phase1.log').read_text()
    assert 'data: semi' in log and result['schedule']['end_warm'] < result['params']['iters']
    # the data and the stage-0 weights are cached: one build each
    assert (out / 'cache' / 'stage0' / '.done.json').is_file()
    assert (out / 'cache' / 'stage0' / 's0.pth').is_file()


@pytest.mark.slow
def test_curve_mode_evaluates_every_budget_of_one_run(tmp_path):
    out = tmp_path / 'exp'
    assert table.main(['--preset', 'tiny', '--curve', '4,2', '--out', str(out), '--quiet']) == 0
    curve = json.loads((out / 'curve' / 'learning_curve.json').read_text())
    assert curve['complete'] and curve['budgets'] == [2, 4]
    assert [pt['steps'] for pt in curve['points']] == [0, 2, 4]
    for pt in curve['points']:
        for arm in arms.CURVE_ARMS:
            assert 0.0 <= pt[arm]['J&F-Mean'] <= 1.0
        assert set(pt['eval_sd']) == {'all', 'naive', 'all - naive'}
    # step 0 is the stage-0 network for both arms; one training run per arm, saved at 2 and 4
    assert curve['points'][0]['all'] == curve['points'][0]['naive']
    for arm in arms.CURVE_ARMS:
        assert len(list((out / 'curve' / 'saves').glob(f'*_{arm}_s0/*_{arm}_s0_[24].pth'))) == 2
    assert sorted(p.name for p in (out / 'logs').glob('curve_train_*.log')) == [
        'curve_train_all.log', 'curve_train_naive.log']
    png = read_frame(str(out / 'curve' / 'learning_curve.png'))
    assert png.ndim == 3 and png.std() > 0


def test_schedule_scales_with_the_budget():
    s = arms.scaled_schedule(150000, arms.ORIG, arms.ORIG_ITERS)   # the original's own flags
    assert s == {'steps': 125000, 'bce_start_warm': 20000, 'bce_end_warm': 70000,
                 'end_warm': 70000, 'phase2_start_update': 70000, 'ema_alpha': 0.995}
    s = arms.scaled_schedule(600, arms.ORIG, arms.ORIG_ITERS)
    assert (s['steps'], s['end_warm'], s['bce_start_warm'], s['bce_end_warm']) == (500, 280, 80, 280)
    assert s['ema_alpha'] == 0.8                                # time constant floor: 5 its
    s0 = arms.scaled_schedule(1000, arms.ORIG_S0, arms.ORIG_S0['iters'])
    assert (s0['steps'], s0['bce_start_warm'], s0['bce_end_warm']) == (500, 67, 233)


def test_summary_mean_and_sample_std():
    seeds = [{'all': {m: v for m in arms.MEASURES}, 'stage0': None} for v in (0.5, 0.7, 0.9)]
    seeds[0]['stage0'] = {m: 0.1 for m in arms.MEASURES}
    rows = stats.summarise(seeds)
    assert set(rows) == {'stage0', 'all'}
    assert rows['all']['J&F-Mean']['mean'] == 0.7 and rows['all']['J&F-Mean']['std'] == 0.2
    assert rows['stage0']['J-Mean'] == {'mean': 0.1, 'std': 0.0, 'values': [0.1]}
    assert 'STCN, all labels' in report.format_table(rows)


def test_t_quantiles():
    assert (stats.t975(1), stats.t975(4), stats.t975(30)) == (12.706, 2.776, 2.042)
    assert abs(stats.t975(60) - 2.000) < 0.003 and abs(stats.t975(1000) - 1.962) < 0.003
    scipy_stats = pytest.importorskip('scipy.stats')
    for df in list(range(1, 31)) + [40, 60, 120, 500]:
        assert stats.t975(df) == pytest.approx(scipy_stats.t.ppf(0.975, df), abs=3e-3)


def _seed(seed, **arms):
    return dict({a: {m: v for m in ('J&F-Mean', 'J-Mean', 'F-Mean')} for a, v in arms.items()},
                seed=seed)


def test_paired_differences_mean_ci_and_signs():
    # naive varies a lot between seeds, phase 2 sits 0.05-0.07 above it at every seed: the
    # unpaired spreads overlap, the paired interval does not contain 0
    naive = (0.30, 0.50, 0.40, 0.60, 0.45)
    gain = (0.05, 0.07, 0.06, 0.05, 0.07)
    per_seed = [_seed(s, naive=n, phase2=n + g, phase1=n - 0.01 * (s % 2), all=n + g + 0.01
                      * (-1) ** s) for s, (n, g) in enumerate(zip(naive, gain))]
    d = stats.paired(per_seed)['phase2 - naive']['J&F-Mean']
    assert d['values'] == [0.05, 0.07, 0.06, 0.05, 0.07]
    sd = math.sqrt(sum((x - 0.06) ** 2 for x in d['values']) / 4)
    half = 2.776 * sd / math.sqrt(5)
    assert d['mean'] == 0.06 and d['sd'] == round(sd, 4)
    assert d['ci95'] == [round(0.06 - half, 4), round(0.06 + half, 4)] and d['ci95'][0] > 0
    assert (d['positive'], d['negative']) == (5, 0)
    p1 = stats.paired(per_seed)['phase1 - naive']['J&F-Mean']
    assert (p1['positive'], p1['negative']) == (0, 2)
    a = stats.paired(per_seed)['all - phase2']['J&F-Mean']
    assert (a['positive'], a['negative']) == (3, 2) and a['ci95'][0] < 0 < a['ci95'][1]
    one = stats.paired(per_seed[:1])['phase2 - naive']['J&F-Mean']
    assert one['ci95'] is None and one['sd'] is None and one['values'] == [0.05]


def test_bootstrap_over_videos_is_evaluation_noise_only():
    base = {f'v{i}': [[0.1 * i, 0.1 * i + 0.1]] for i in range(8)}         # [J, F] per object
    shifted = {v: [[j + 0.2, f + 0.2] for j, f in objs] for v, objs in base.items()}
    flat = {v: [[0.5, 0.5], [0.3, 0.3]] for v in base}                      # two objects each
    res = {a: {'videos': v} for a, v in (('naive', base), ('phase2', shifted), ('all', flat),
                                         ('phase1', base))}
    b = stats.bootstrap(res, stats.DIFFS, draws=500)
    assert b['videos'] == 8 and b['draws'] == 500
    assert b['sd']['naive'] > 0.05 and b['sd']['all'] == 0.0
    # the same resamples for every model: a constant shift has no evaluation noise
    assert b['sd']['phase2 - naive'] == 0.0 and b['sd']['phase1 - naive'] == 0.0
    assert b['sd']['all - phase2'] == pytest.approx(b['sd']['phase2'], abs=1e-4)
    # the sd of a mean of 8 resampled videos: population sd / sqrt(8), up to resampling noise
    jf = [0.1 * i + 0.05 for i in range(8)]
    pop = math.sqrt(sum((x - sum(jf) / 8) ** 2 for x in jf) / 8)
    assert b['sd']['naive'] == pytest.approx(pop / math.sqrt(8), rel=0.15)
    assert stats.jf_mean(flat, ['v0', 'v0']) == 0.4
    assert b == stats.bootstrap(res, stats.DIFFS, draws=500)          # seeded


def test_arm_commands_and_preset_overrides():
    split = {'davis': 'd.json', 'youtube': 'y.json', 'davis_gt': 'dg', 'yv_gt': 'yg'}
    cmds = arms.arm_commands(arms.PRESETS['gpu'], 'DATA', 's0.pth', 'OUT', 3, split, 1000,
                          save_every=250)
    assert set(cmds) == set(arms.ARMS)
    for arm, cmd in cmds.items():
        i = cmd.index
        assert cmd[i('-i') + 1] == 1000 and cmd[i('--save_every') + 1] == 250
        assert cmd[i('--seed') + 1] == 3 and cmd[i('--id') + 1] == f'{arm}_s3'
        assert cmd[i('--device') + 1] == 'cuda' and cmd[i('--crop_size') + 1] == 192
        assert ('--davis_data' in cmd) == (arm != 'all')       # all labels: every frame's mask
    assert '--semi' in cmds['phase1'] and '--phase2_davis' in cmds['phase2']
    a = table.parse_args(['--preset', 'cpu'])
    assert (a.seeds, a.jobs, a.iters, a.curve) == (5, None, None, None)
    a = table.parse_args(['--preset', 'cpu', '--curve', '240,60', '--iters', '30', '--jobs', '3'])
    assert (a.curve, a.iters, a.jobs) == ([240, 60], 30, 3)
    for bad in (['--curve', '60,x'], ['--curve', '0,60'], ['--iters', '0'], ['--jobs', '0']):
        with pytest.raises(SystemExit):
            table.parse_args(['--preset', 'cpu'] + bad)
    assert arms.PRESETS['cpu']['davis_val'] >= 12 and arms.PRESETS['gpu']['davis_val'] >= 12


def _fake_seed(seed, shift):
    videos = {f'v{i}': [[0.1 * i + shift, 0.1 * i + shift]] for i in range(4)}
    arm = {'videos': videos, **{m: stats.jf_mean(videos, sorted(videos)) for m in arms.MEASURES}}
    return {'seed': seed, 'stage0': arm if seed == 0 else None, 'bank': arm,
            **{a: dict(arm) for a in arms.ARMS}}


def test_combine_merges_the_seeds_of_runs_started_apart(tmp_path, capsys):
    p = dict(arms.PRESETS['tiny'])
    for folder, seeds in (('a', (0, 1)), ('b', (1, 2, 3))):    # seed 1 twice: the first kept
        a = table.parse_args(['--preset', 'tiny', '--seeds', str(len(seeds))])
        per_seed = [_fake_seed(s, 0.01 * s + (0.5 if folder == 'b' and s == 1 else 0))
                    for s in seeds]
        os.makedirs(tmp_path / folder)
        report.write_results(str(tmp_path / folder), a, p, per_seed, {}, 10)
    out = tmp_path / 'all'
    assert table.main(['--preset', 'tiny', '--out', str(out), '--combine', str(tmp_path / 'a'),
                   str(tmp_path / 'b')]) == 0
    result = json.loads((out / 'two_shot_table.json').read_text())
    assert result['seeds'] == [0, 1, 2, 3] and result['complete']
    assert result['rows']['naive']['J&F-Mean']['values'] == pytest.approx(
        [0.15, 0.16, 0.17, 0.18])
    assert len(result['rows']['stage0']['J&F-Mean']['values']) == 1
    assert len(result['paired']['phase2 - naive']['J&F-Mean']['values']) == 4
    assert 'phase 2 − naive' in capsys.readouterr().out
    p2 = dict(p, iters=p['iters'] + 1)                 # another budget: refused
    a = table.parse_args(['--preset', 'tiny', '--seeds', '1'])
    os.makedirs(tmp_path / 'c')
    report.write_results(str(tmp_path / 'c'), a, p2, [_fake_seed(4, 0)], {}, 10)
    with pytest.raises(table.UserError, match='another preset, budget or data'):
        table.main(['--preset', 'tiny', '--out', str(out), '--combine', str(tmp_path / 'a'),
                str(tmp_path / 'c')])
