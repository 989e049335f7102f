"""The two-shot toy experiment's outputs: the printed table, the JSON results and the charts of
the table and of the learning curve."""
import functools
import json
import math
import os
import shlex
import sys
import time

from scripts.experiments.two_shot_arms import (ARMS, CURVE_ARMS, MEASURES, ORIG, ORIG_ITERS,
                                               ORIG_S0, scaled_schedule)
from scripts.experiments.two_shot_stats import DIFFS, bootstrap, paired, summarise

ARM_LABELS = {'all': 'STCN, all labels', 'naive': 'naive two-shot (2 labels only)',
              'phase1': 'two-shot phase 1', 'phase2': 'two-shot phase 2',
              'bank': 'phase-1 bank vs hidden labels', 'stage0': 'stage-0 start (no video)'}
SHORT = {'all': 'all labels', 'naive': 'naive', 'phase1': 'phase 1', 'phase2': 'phase 2',
         'stage0': 'stage 0'}


def diff_label(key):
    a, b = key.split(' - ')
    return f'{SHORT[a]} − {SHORT[b]}'


def format_table(rows, diffs=None, boot=None):
    labels = dict(ARM_LABELS, bank='phase-1 bank vs hidden labels (DAVIS train)')
    width = max(len(labels[r]) for r in rows)
    lines = [f'{"":{width}}  ' + '  '.join(f'{m:>13}' for m in MEASURES) + '  seeds']
    for r, ms in rows.items():
        n = len(ms['J&F-Mean']['values'])
        lines.append(f'{labels[r]:{width}}  ' + '  '.join(
            f'{ms[m]["mean"]:6.3f} ± {ms[m]["std"]:.3f}' for m in MEASURES) + f'  {n}')
    if diffs:
        lines += ['', 'paired differences of J&F-Mean (per seed: same stage 0, labeled frames '
                      'and validation videos)',
                  f'{"":22}{"mean":>7}  {"95 % CI (t, seeds)":>18}  {"+ / -":>6}  '
                  f'{"eval sd":>7}  per seed']
        for key, ms in diffs.items():
            d = ms['J&F-Mean']
            ci = '' if d['ci95'] is None else f'[{d["ci95"][0]:+.3f}, {d["ci95"][1]:+.3f}]'
            ev = f'{boot["sd"][key]:.3f}' if boot else ''
            lines.append(f'{diff_label(key):22}{d["mean"]:+7.3f}  {ci:>18}  '
                         f'{d["positive"]:>2} / {d["negative"]:<2} {ev:>7}  '
                         + ' '.join(f'{v:+.3f}' for v in d['values']))
    if boot:
        lines += ['', f'evaluation-only sd of J&F-Mean (seed {boot["seed"]}, bootstrap over '
                      f'{boot["videos"]} validation videos, {boot["draws"]} draws): '
                  + ', '.join(f'{SHORT[a]} {boot["sd"][a]:.3f}' for a in ARMS)]
    return '\n'.join(lines)


def plot(rows, diffs, path, title):
    """Left: J&F-Mean per row (mean ± std, one dot per seed); right: the paired differences
    (mean and 95 % CI over the seeds, one dot per seed)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4), width_ratios=(3, 2))
    names = list(rows)
    for i, r in enumerate(names):
        jf = rows[r]['J&F-Mean']
        left.bar(i, jf['mean'], 0.6, yerr=jf['std'], capsize=3, color='C0', alpha=0.6)
        left.plot([i] * len(jf['values']), jf['values'], 'k.', ms=4)
    left.set_xticks(range(len(names)))
    left.set_xticklabels([{'bank': 'bank (train)'}.get(r, r) for r in names])
    left.set_ylim(0, 1)
    left.set_ylabel('J&F-Mean (DAVIS-layout val; bank: train)')
    left.set_title('mean ± std over seeds, dots: seeds', fontsize=9)
    keys = list(diffs)
    for i, key in enumerate(keys):
        d = diffs[key]['J&F-Mean']
        if d['ci95'] is not None:
            right.errorbar(i, d['mean'], yerr=[[d['mean'] - d['ci95'][0]],
                                               [d['ci95'][1] - d['mean']]],
                           fmt='o', color='C3', capsize=5)
        right.plot([i + 0.15] * len(d['values']), d['values'], 'k.', ms=4)
    right.axhline(0, color='grey', lw=0.8)
    right.set_xticks(range(len(keys)))
    right.set_xticklabels([diff_label(k) for k in keys], fontsize=8)
    right.set_ylabel('paired difference of J&F-Mean')
    right.set_title('mean and 95 % CI over seeds, dots: seeds', fontsize=9)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)


def save_figure(fig, path):
    import matplotlib.pyplot as plt
    tmp = path + '.tmp.png'
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)


def write_results(out, a, p, per_seed, step_seconds, seconds, extra=None):
    """Write the JSON and the PNG of the seeds done so far; returns (table, json, png)."""
    rows, diffs = summarise(per_seed), paired(per_seed)
    first = per_seed[0]
    boot = dict(bootstrap(first, DIFFS), seed=first['seed'])
    table = format_table(rows, diffs, boot)
    result = {'preset': a.preset, 'params': p, 'seeds': [r['seed'] for r in per_seed],
              'jobs': p['jobs'], 'seeds_requested': a.seeds,
              'complete': len(per_seed) == a.seeds,
              'schedule': scaled_schedule(p['iters'], ORIG, ORIG_ITERS),
              'schedule_stage0': scaled_schedule(p['iters0'], ORIG_S0, ORIG_S0['iters']),
              'command': command_line(), 'seconds': seconds, 'step_seconds': step_seconds,
              'per_seed': per_seed, 'rows': rows, 'paired': diffs, 'eval_bootstrap': boot,
              'table': table, **(extra or {})}
    js = os.path.join(out, 'two_shot_table.json')
    write_json(js, result)
    png = os.path.join(out, 'two_shot_table.png')
    plot(rows, diffs, png, f'two-shot toy, preset {a.preset}: {len(per_seed)} seed(s), '
                           f'{p["iters"]} iterations per arm, {boot["videos"]} val videos')
    return table, js, png


def command_line():
    return ' '.join(shlex.quote(x) for x in ['python'] + sys.argv)


def write_json(path, obj):
    with open(path + '.tmp', 'w') as f:
        json.dump(obj, f, indent=1)
    os.replace(path + '.tmp', path)


def write_curve(a, p, run, folder, seed, budgets, res, start):
    """learning_curve.json / .png of the budgets evaluated so far; returns (table, json, png)."""
    n, every, pair = budgets[-1], functools.reduce(math.gcd, budgets), tuple(CURVE_ARMS)
    key = f'{pair[0]} - {pair[1]}'
    points = []
    for b in [0] + [b for b in budgets if all((arm, b) in res for arm in CURVE_ARMS)]:
        arms = {arm: res[('stage0', 0) if b == 0 else (arm, b)] for arm in CURVE_ARMS}
        boot = bootstrap(arms, [pair])
        points.append({'steps': b, 'eval_sd': boot['sd'],
                       **{arm: {m: arms[arm][m] for m in MEASURES} for arm in CURVE_ARMS},
                       'videos': {arm: arms[arm]['videos'] for arm in CURVE_ARMS}})
    lines = [f'J&F-Mean at seed {seed}, one run per arm to {n} steps (lr drop and ramps at '
             f'their fractions of {n}), evaluated at each saved budget; eval sd: bootstrap '
             f'over {boot["videos"]} validation videos',
             f'{"steps":>6}  {"all labels":>10}  {"naive":>7}  {"all − naive":>11}  '
             f'{"eval sd":>7}']
    for pt in points:
        jf = [pt[arm]['J&F-Mean'] for arm in CURVE_ARMS]
        lines.append(f'{pt["steps"]:>6}  {jf[0]:10.3f}  {jf[1]:7.3f}  {jf[0] - jf[1]:+11.3f}  '
                     f'{pt["eval_sd"][key]:7.3f}')
    table = '\n'.join(lines)
    js, png = (os.path.join(folder, 'learning_curve' + ext) for ext in ('.json', '.png'))
    write_json(js, {'preset': a.preset, 'params': p, 'seed': seed, 'budgets': budgets,
                    'schedule': scaled_schedule(n, ORIG, ORIG_ITERS), 'points': points,
                    'complete': len(points) == len(budgets) + 1, 'command': command_line(),
                    'seconds': round(time.time() - start), 'step_seconds': run.seconds,
                    'table': table})
    plot_curve(points, key, png, f'preset {a.preset}, seed {seed}: one run per arm to {n} '
                                 f'steps, checkpoints every {every}')
    return table, js, png


def plot_curve(points, key, path, title):
    """Left: J&F-Mean against steps per arm; right: their difference; bars: 95 % of the
    evaluation-only bootstrap (1.96 sd)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    steps = [pt['steps'] for pt in points]
    for i, arm in enumerate(CURVE_ARMS):
        left.errorbar(steps, [pt[arm]['J&F-Mean'] for pt in points],
                      yerr=[1.96 * pt['eval_sd'][arm] for pt in points], marker='o',
                      capsize=3, label=ARM_LABELS[arm], color=f'C{i}')
    left.set_xlabel('training steps per arm')
    left.set_ylabel('J&F-Mean (DAVIS-layout val)')
    left.legend(fontsize=8)
    right.errorbar(steps, [pt[CURVE_ARMS[0]]['J&F-Mean'] - pt[CURVE_ARMS[1]]['J&F-Mean']
                           for pt in points],
                   yerr=[1.96 * pt['eval_sd'][key] for pt in points], marker='o', capsize=3,
                   color='C3')
    right.axhline(0, color='grey', lw=0.8)
    right.set_xlabel('training steps per arm')
    right.set_ylabel(f'{diff_label(key)} (J&F-Mean)')
    fig.suptitle(title + '; bars: 95 % evaluation-only (bootstrap over videos)', fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)
