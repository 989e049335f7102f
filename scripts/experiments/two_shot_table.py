"""The paper's comparison at toy scale: all labels vs naive two-shot vs phase 1 vs phase 2.

    python scripts/experiments/two_shot_table.py --preset {cpu,gpu,tiny} [--seeds 5] [--out DIR]
        [--jobs N] [--threads N] [--iters N] [--curve N,N,...]

On synthetic two-shot data (scripts.data.synthetic; no downloads) every arm starts from the same
stage-0 weights (trained once and cached under OUT/cache), trains on the same videos for the
same number of iterations and is evaluated the same way, on held-out fully labeled
DAVIS-layout validation videos (eval_davis.py --evaluate):

  all     STCN on every frame's mask (stage 3, ordinary triplets)
  naive   the two labeled frames per video only (--davis_data / --yv_data, no --semi)
  phase1  --semi --use_teacher: warm-up on the labeled frames, then semi triplets
  phase2  from the stage-0 weights again, on the merged bank of the phase-1 model
          (eval_youtube_bank.py) with the original's phase-2 flags (run_phase2.sh: in-batch
          refresh from --phase2_start_update, no teacher)
  bank    the phase-1 bank itself against the hidden full labels of the training videos

Each seed s draws its own labeled frames (phase2_scripts.make_two_shot_split --seed s) and trains with
--seed s; the videos are the same for every seed. Every step is one of the project's own
commands, run as a subprocess and echoed (its output in OUT/logs/); the schedule flags of the
original (lr drop, --end_warm, --phase2_start_update, the bootstrapped-CE ramp, the teacher's
EMA time constant) are scaled to the iteration budget. Prints and writes, after every seed:
the mean ± sample std of each row; the paired differences of DIFFS per seed (both arms of a
seed share stage 0, labeled frames and validation videos) with their mean, 95 % t-interval
over the seeds and sign count; the evaluation-only noise (bootstrap over the validation videos
of the first seed's models). OUT/two_shot_table.json keeps every number, OUT/two_shot_table.png
shows the rows and the differences.

--curve N,N,... trains instead the all-labels and naive arms at seed 0, one run each to the
largest budget, and evaluates the checkpoints saved at each budget: OUT/curve/
learning_curve.{json,png} (J&F against steps, with the evaluation-only bootstrap).
docs/experiments.md explains the toy's design and lists measured tables.
"""
import argparse
import functools
import json
import math
import os
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if __name__ == '__main__' and not __package__:      # run as a file: rerun as its module
    os.execve(sys.executable, [sys.executable, '-m', 'scripts.experiments.two_shot_table']
              + sys.argv[1:], dict(os.environ, PYTHONPATH=os.pathsep.join(
                  p for p in (ROOT, os.environ.get('PYTHONPATH')) if p)))

from util.device import pick_device  # noqa: E402
from util.errors import UserError, run_main  # noqa: E402
from util.outputs import check_folder_output  # noqa: E402
from scripts.experiments.two_shot_arms import (  # noqa: E402
    ARMS, CURVE_ARMS, PRESETS, Runner, arm_commands, cached, digest, evaluate, latest, log_stats,
    make_data, make_split, make_stage0, saved, train_full_and_naive, train_two_shot)
from scripts.experiments.two_shot_report import write_curve, write_results  # noqa: E402


def run_table(a, p, run, data, s0, out, start):
    """Every arm at seeds 0..a.seeds-1; prints and writes the results after every seed."""
    folders = {seed: os.path.join(out, f'seed{seed}')
               for seed in range(a.first_seed, a.first_seed + a.seeds)}
    splits = {}
    for seed, folder in folders.items():
        shutil.rmtree(folder, ignore_errors=True)
        splits[seed] = make_split(run, data, folder, seed)
    # stage 0's evaluation, then two tasks per seed (phase 1 -> bank -> phase 2; all labels +
    # naive): a pool of --jobs keeps every worker busy to the last seed
    tasks = [(fn, seed) for seed in folders for fn in (train_two_shot, train_full_and_naive)]
    parts = {seed: {'seed': seed} for seed in folders}
    pending = {seed: 2 for seed in folders}
    stage0, done = None, []
    with ThreadPoolExecutor(max_workers=p['jobs']) as pool:
        futures = {} if a.first_seed else {   # stage 0: evaluated by the run holding seed 0
            pool.submit(evaluate, run, p, data, s0, os.path.join(out, 'eval_stage0'),
                        'eval_stage0'): None}
        futures.update({pool.submit(fn, run, p, data, s0, folders[seed], seed, splits[seed]):
                        seed for fn, seed in tasks})
        for fut in as_completed(futures):
            seed = futures[fut]
            if seed is None:
                stage0 = fut.result()
            else:
                parts[seed].update(fut.result())
                pending[seed] -= 1
                if pending[seed] == 0:
                    parts[seed]['curves'] = {
                        arm: log_stats(os.path.join(run.logs, f's{seed}_train_{arm}.log'))
                        for arm in ARMS}
                    done.append(seed)
            if not done or (seed is None and len(done) < a.seeds):
                continue
            per_seed = [dict(parts[s], stage0=stage0 if s == min(done) else None)
                        for s in sorted(done)]
            seconds = round(time.time() - start)
            table, js, png = write_results(out, a, p, per_seed, run.seconds, seconds)
            if len(done) < a.seeds or (stage0 is None and not a.first_seed):   # partial
                print(f'after seed(s) {sorted(done)} ({seconds} s):\n{table}', flush=True)
    return table, js, png, seconds


def combine(a, out, start):
    """The seeds of several runs of one preset (--combine DIR ...; e.g. seeds run at the same
    time by --first_seed) as one table in OUT; a seed in several runs is taken from the first."""
    runs = []
    for folder in a.combine:
        path = os.path.join(folder, 'two_shot_table.json')
        if not os.path.isfile(path):
            raise UserError(f'{path}: not found (--combine takes output folders of this script)')
        with open(path) as f:
            runs.append(json.load(f))
        same = ('preset', 'schedule', 'schedule_stage0')
        if any(runs[-1][k] != runs[0][k] for k in same) or any(
                runs[-1]['params'][k] != v for k, v in runs[0]['params'].items()
                if k not in ('jobs', 'threads')):
            raise UserError(f'{path}: another preset, budget or data than '
                            f'{os.path.join(a.combine[0], "two_shot_table.json")}')
    by_seed, stage0 = {}, None
    for r in runs:
        for res in r['per_seed']:
            by_seed.setdefault(res['seed'], res)
            stage0 = stage0 or res.get('stage0')
    per_seed = [dict(by_seed[k], stage0=None) for k in sorted(by_seed)]
    per_seed[0]['stage0'] = stage0
    a.preset, a.seeds = runs[0]['preset'], len(per_seed)
    params = dict(runs[0]['params'], jobs=[r['params'].get('jobs') for r in runs])
    table, js, png = write_results(
        out, a, params, per_seed, [r['step_seconds'] for r in runs],
        [r['seconds'] for r in runs],
        {'combined': [os.path.abspath(f) for f in a.combine],
         'complete': all(r['complete'] for r in runs)})
    return table, js, png, round(time.time() - start)


def run_curve(a, p, run, data, s0, out, start):
    """All labels and naive at seed 0, one run each to the largest budget (schedule scaled to
    it) saving at every budget; each saved budget is evaluated as soon as both arms reach it
    (the curve so far is written after each), stage 0 as step 0."""
    budgets = sorted(set(a.curve))
    n, every, seed = budgets[-1], functools.reduce(math.gcd, budgets), 0
    folder = os.path.join(out, 'curve')
    shutil.rmtree(folder, ignore_errors=True)
    split = make_split(run, data, folder, seed)
    cmds = arm_commands(p, data, s0, folder, seed, split, n, save_every=every)
    saves = os.path.join(folder, 'saves')
    res, written = {}, None

    def evaluate_at(arm, b):
        model = s0 if b == 0 else latest(saves, f'{arm}_s{seed}', b)
        name = 'stage0' if b == 0 else f'{arm}_{b}'
        return evaluate(run, p, data, model, os.path.join(folder, 'eval', name),
                        f'curve_eval_{name}')

    with ThreadPoolExecutor(len(CURVE_ARMS)) as trainers, ThreadPoolExecutor(p['jobs']) as evals:
        training = [trainers.submit(run, f'curve_train_{arm}', cmds[arm]) for arm in CURVE_ARMS]
        futures = {evals.submit(evaluate_at, CURVE_ARMS[0], 0): ('stage0', 0)}
        waiting = [(arm, b) for b in budgets for arm in CURVE_ARMS]
        while waiting or futures:
            for key in [k for k in waiting if saved(saves, f'{k[0]}_s{seed}', k[1])]:
                futures[evals.submit(evaluate_at, *key)] = key
                waiting.remove(key)
            for fut in [f for f in futures if f.done()]:
                res[futures.pop(fut)] = fut.result()
            for t in training:
                if t.done():
                    t.result()              # a failed run ends the experiment here
            if waiting and all(t.done() for t in training):
                raise UserError(f'{saves}: no checkpoint at {waiting}')
            ready = [b for b in budgets if all((arm, b) in res for arm in CURVE_ARMS)]
            if ('stage0', 0) in res and ready and ready[-1] != written:
                written = ready[-1]
                table, js, png = write_curve(a, p, run, folder, seed, budgets, res, start)
                if waiting or futures:
                    print(f'learning curve to {written} steps:\n{table}', flush=True)
            time.sleep(0 if not (waiting or futures) else 2)
    return table, js, png, round(time.time() - start)


def budget_list(text):
    try:
        budgets = [int(x) for x in text.split(',')]
    except ValueError:
        raise argparse.ArgumentTypeError(f'not a comma-separated list of integers: {text!r}')
    if not budgets or min(budgets) < 1:
        raise argparse.ArgumentTypeError(f'budgets must be >= 1: {text!r}')
    return budgets


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--preset', required=True, choices=sorted(PRESETS))
    ap.add_argument('--seeds', type=int, default=5,
                    help='seeds K..K+N-1, K = --first_seed (split + training seed)')
    ap.add_argument('--first_seed', type=int, default=0,
                    help='first seed (default 0); runs of other seeds merge with --combine')
    ap.add_argument('--out', default=None, help='output folder (default two_shot_<preset>)')
    ap.add_argument('--jobs', type=int, default=None,
                    help="override the preset's number of training/evaluation tasks run at "
                         "the same time")
    ap.add_argument('--device', default=None, help="override the preset's device")
    ap.add_argument('--threads', type=int, default=None,
                    help="override the preset's OMP_NUM_THREADS per command (e.g. 1 on a CPU "
                         "shared with another job: two threads contending for two cores spin)")
    ap.add_argument('--iters', type=int, default=None,
                    help="override the preset's iterations per arm")
    ap.add_argument('--curve', type=budget_list, default=None, metavar='N,N,...',
                    help='learning-curve mode instead of the table: all labels and naive at '
                         'seed 0, evaluated after each of these step budgets')
    ap.add_argument('--combine', nargs='+', metavar='DIR', default=None,
                    help='no training: merge the seeds of these output folders (runs of the '
                         'same preset and budget) into one table in --out')
    ap.add_argument('--quiet', action='store_true', help='do not echo the commands')
    ap.add_argument('--debug', action='store_true', help='full tracebacks on errors')
    a = ap.parse_args(argv)
    if a.seeds < 1 or any(v is not None and v < 1 for v in (a.jobs, a.iters)):
        ap.error('--seeds, --jobs and --iters must be >= 1')
    if a.first_seed < 0:
        ap.error('--first_seed must be >= 0')
    return a


def main(argv):
    a = parse_args(argv)
    p = dict(PRESETS[a.preset])
    for k in ('device', 'threads', 'iters', 'jobs'):
        if getattr(a, k):
            p[k] = getattr(a, k)
    if p['device']:
        pick_device(p['device'])                   # an unknown or absent device: refused now
    out = os.path.abspath(a.out or f'two_shot_{a.preset}')
    check_folder_output(out, 'experiment folder (--out)')
    os.makedirs(out, exist_ok=True)
    start = time.time()
    if a.combine:
        table, js, png, _ = combine(a, out, start)
        print(table)
        print(f'wrote {js} and {png}')
        return 0
    run = Runner(out, p['threads'], a.quiet)
    data_keys = ('davis_train', 'davis_val', 'yt_train', 'static', 'frames', 'max_frames',
                 'height', 'width', 'drift')
    data_p = {k: p[k] for k in data_keys}
    data = os.path.join(out, 'cache', 'data')
    cached(data, digest(data_p), lambda d: make_data(run, p, d, 0))
    s0_p = dict(data_p, **{k: p[k] for k in ('crop', 'batch', 'lr', 'iters0', 'device')})
    s0_dir = os.path.join(out, 'cache', 'stage0')
    cached(s0_dir, digest(s0_p), lambda d: make_stage0(run, p, data, d))
    s0 = os.path.join(s0_dir, 's0.pth')
    fn = run_curve if a.curve else run_table
    table, js, png, seconds = fn(a, p, run, data, s0, out, start)
    print(table)
    print(f'wall time: {seconds // 60} min {seconds % 60} s')
    print(f'wrote {js} and {png}')
    return 0


if __name__ == '__main__':
    run_main(main)
