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
import csv
import functools
import glob
import hashlib
import json
import math
import os
import random
import shlex
import shutil
import subprocess
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
from util.layout import bank_output  # noqa: E402
from util.outputs import check_folder_output  # noqa: E402

ARMS = ('all', 'naive', 'phase1', 'phase2')
ARM_LABELS = {'all': 'STCN, all labels', 'naive': 'naive two-shot (2 labels only)',
              'phase1': 'two-shot phase 1', 'phase2': 'two-shot phase 2',
              'bank': 'phase-1 bank vs hidden labels', 'stage0': 'stage-0 start (no video)'}
SHORT = {'all': 'all labels', 'naive': 'naive', 'phase1': 'phase 1', 'phase2': 'phase 2',
         'stage0': 'stage 0'}
MEASURES = ('J&F-Mean', 'J-Mean', 'F-Mean')
DIFFS = (('phase2', 'naive'), ('phase1', 'naive'), ('all', 'phase2'))   # paired: a - b
CURVE_ARMS = ('all', 'naive')                # the learning curve's arms (difference: a - b)
BOOT_DRAWS = 2000                            # bootstrap resamples of the validation videos
# 0.975 quantiles of Student's t, df 1..30
T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
        2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
        2.060, 2.056, 2.052, 2.048, 2.045, 2.042)

# The original's schedule (stage 3 / phase 1 / phase 2: 150k iterations; stage 0: 300k) as
# fractions of the run; every toy run uses the same fractions of its own budget.
ORIG_ITERS = 150000
ORIG = {'steps': 125000, 'bce_start_warm': 20000, 'bce_end_warm': 70000, 'end_warm': 70000,
        'phase2_start_update': 70000, 'ema_tau': 1 / (1 - 0.995)}
ORIG_S0 = {'iters': 300000, 'steps': 150000, 'bce_start_warm': 20000, 'bce_end_warm': 70000}
MIN_EMA_TAU = 5.0          # the teacher averages over at least this many iterations

PRESETS = {
    # data: DAVIS-layout train / val videos, YouTube-layout train videos, static images per set,
    # frames per video (uniform in [frames, max_frames]), frame size, appearance drift
    # training: crop, batch, lr, stage-0 and per-arm iterations; device, worker processes
    # per run, OMP_NUM_THREADS per command, tasks at the same time (--jobs)
    'tiny': dict(davis_train=2, davis_val=1, yt_train=1, static=2, frames=6, max_frames=7,
                 height=48, width=64, drift=0.5, crop=32, batch=2, lr=1e-4, iters0=2,
                 iters=3, device='cpu', workers=0, threads=1, jobs=1),
    'cpu': dict(davis_train=4, davis_val=12, yt_train=2, static=40, frames=20, max_frames=40,
                height=80, width=144, drift=0.5, crop=64, batch=4, lr=1e-4, iters0=150,
                iters=240, device='cpu', workers=1, threads=1, jobs=2),
    'gpu': dict(davis_train=8, davis_val=16, yt_train=4, static=200, frames=20, max_frames=40,
                height=192, width=320, drift=0.5, crop=192, batch=8, lr=1e-4, iters0=1000,
                iters=1000, device='cuda', workers=2, threads=None, jobs=5),
}


def scaled_schedule(n, orig, orig_iters):
    """The original's schedule flags scaled to a run of n iterations (at least 1 apart)."""
    f = n / orig_iters
    out = {k: max(1, int(round(v * f))) for k, v in orig.items() if k not in ('iters', 'ema_tau')}
    out['steps'] = min(out['steps'], n)
    out['bce_end_warm'] = max(out['bce_end_warm'], out['bce_start_warm'] + 1)
    if 'ema_tau' in orig:
        tau = max(MIN_EMA_TAU, orig['ema_tau'] * f)
        out['ema_alpha'] = round(1 - 1 / tau, 4)
    return out


class Runner:
    """Runs the project's commands, echoing each one; output to OUT/logs/<name>.log."""

    def __init__(self, out, threads, quiet=False):
        self.logs = os.path.join(out, 'logs')
        os.makedirs(self.logs, exist_ok=True)
        self.env = dict(os.environ)
        if threads:
            self.env['OMP_NUM_THREADS'] = str(threads)
        self.quiet = quiet
        self.seconds = {}

    def __call__(self, name, args):
        cmd = [sys.executable] + [str(a) for a in args]
        log = os.path.join(self.logs, name + '.log')
        if not self.quiet:              # one write: commands of parallel tasks stay whole
            sys.stdout.write(f'+ {" ".join(shlex.quote(c) for c in cmd)}\n')
            sys.stdout.flush()
        start = time.time()
        with open(log, 'w') as f:
            rc = subprocess.call(cmd, cwd=ROOT, env=self.env, stdout=f, stderr=subprocess.STDOUT)
        self.seconds[name] = round(time.time() - start, 1)
        if rc != 0:
            with open(log) as f:
                tail = f.read().strip().splitlines()[-5:]
            raise UserError(f'{log}: step {name!r} failed (exit {rc}): ' + ' | '.join(tail))


def digest(obj):
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:12]


def cached(folder, key, build):
    """Run build(folder) unless folder holds a finished build with the same key."""
    stamp = os.path.join(folder, '.done.json')
    if os.path.isfile(stamp):
        with open(stamp) as f:
            if json.load(f).get('key') == key:
                return False
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    build(folder)
    with open(stamp, 'w') as f:
        json.dump({'key': key}, f)
    return True


def latest(save_root, run_id, it):
    found = sorted(glob.glob(os.path.join(save_root, f'*_{run_id}', f'*_{run_id}_{it}.pth')),
                   key=os.path.getmtime)
    if not found:
        raise UserError(f'{save_root}: no checkpoint {run_id}_{it}.pth was written')
    return found[-1]


def read_global(folder, split):
    path = os.path.join(folder, f'global_results-{split}.csv')
    with open(path) as f:
        row = next(csv.DictReader(f))
    return {m: float(row[m]) for m in MEASURES}


def read_videos(folder, split):
    """{video: [[J-Mean, F-Mean] per object]} from per-sequence_results-<split>.csv."""
    videos = {}
    with open(os.path.join(folder, f'per-sequence_results-{split}.csv')) as f:
        for row in csv.DictReader(f):
            video = row['Sequence'].rsplit('_', 1)[0]
            videos.setdefault(video, []).append([float(row['J-Mean']), float(row['F-Mean'])])
    return videos


def make_data(run, p, data, seed):
    common = ['--height', p['height'], '--width', p['width'], '--objects', 2,
              '--frames', p['frames'], '--max_frames', p['max_frames'], '--drift', p['drift']]
    run('data_davis', ['-m', 'scripts.data.synthetic', '--out', data, '--layout', 'davis',
                       '--videos', p['davis_train'] + p['davis_val'],
                       '--val_videos', p['davis_val'], '--seed', seed] + common)
    run('data_youtube', ['-m', 'scripts.data.synthetic', '--out', data, '--layout', 'youtube',
                         '--videos', p['yt_train'], '--val_videos', 0, '--seed', seed + 1]
        + common)
    run('data_static', ['-m', 'scripts.data.synthetic', '--out', data, '--layout', 'static',
                        '--videos', p['static'], '--height', p['height'], '--width', p['width'],
                        '--seed', seed + 2])


def train_flags(p, save_root, seed, save_every=None):
    """Flags every training run shares; weights saved at the end (and every save_every)."""
    return ['--lr', p['lr'], '-b', p['batch'], '--crop_size', p['crop'],
            '--num_workers', p['workers'], '--save_root', save_root, '--seed', seed,
            '--log_every', max(1, p['iters'] // 20), '--save_every', save_every or 10 ** 9
            ] + device_flags(p)


def make_stage0(run, p, data, folder):
    yt = os.path.join(data, 'YouTube', 'train_480p', 'JPEGImages')
    init = os.path.join(folder, 'init.pth')
    run('init_weights', ['-m', 'model.init_weights', '--out', init, '--seed', 0,
                         '--calibrate_bn', yt, '--calibrate_frames', 32])
    n = p['iters0']
    s = scaled_schedule(n, ORIG_S0, ORIG_S0['iters'])
    run('stage0', ['train.py', '--id', 's0', '--stage', 0, '--static_root',
                   os.path.join(data, 'static'), '--load_network', init, '-i', n,
                   '--steps', s['steps'], '--bce_start_warm', s['bce_start_warm'],
                   '--bce_end_warm', s['bce_end_warm']]
        + train_flags(dict(p, iters=n), os.path.join(folder, 'saves'), 0))
    shutil.copy(latest(os.path.join(folder, 'saves'), 's0', n), os.path.join(folder, 's0.pth'))


def make_split(run, data, out, seed):
    """Seed s's two labeled frames per training video and the sparse label trees built from
    them; returns their paths {'davis', 'youtube', 'davis_gt', 'yv_gt'}."""
    d_ann, d_list, y_ann = train_annotations(data)
    tag, split = f's{seed}', os.path.join(out, 'split')
    paths = {'davis': os.path.join(split, 'davis_rand_2frames.json'),
             'youtube': os.path.join(split, 'yv_rand_2frames.json'),
             'davis_gt': os.path.join(split, 'davis_gt'),
             'yv_gt': os.path.join(split, 'yv_gt_480p')}
    run(f'{tag}_split_davis', ['-m', 'phase2_scripts.make_two_shot_split', '--annotations', d_ann,
                               '--video_list', d_list, '--seed', seed, '--out', paths['davis']])
    run(f'{tag}_split_youtube', ['-m', 'phase2_scripts.make_two_shot_split', '--annotations', y_ann,
                                 '--seed', seed, '--out', paths['youtube']])
    run(f'{tag}_sparse_davis', ['phase2_scripts/prepare_sparse_gt.py', '--annotations', d_ann,
                                '--split', paths['davis'], '--out', paths['davis_gt']])
    run(f'{tag}_sparse_youtube', ['phase2_scripts/prepare_sparse_gt.py', '--annotations', y_ann,
                                  '--split', paths['youtube'], '--out', paths['yv_gt']])
    return paths


def train_annotations(data):
    """(DAVIS-layout train annotations, its train.txt, YouTube-layout train annotations)."""
    davis = os.path.join(data, 'DAVIS', '2017', 'trainval')
    return (os.path.join(davis, 'Annotations', '480p'),
            os.path.join(davis, 'ImageSets', '2017', 'train.txt'),
            os.path.join(data, 'YouTube', 'train_480p', 'Annotations'))


def arm_commands(p, data, s0, out, seed, split, n, save_every=None):
    """train.py argument lists of every arm at seed `seed`, n iterations, the schedule scaled
    to n; full-label stage-3 runs (--davis_root / --yv_root), the two-shot arms restricted by
    --davis_data / --yv_data."""
    davis, yt = os.path.join(data, 'DAVIS'), os.path.join(data, 'YouTube')
    s = scaled_schedule(n, ORIG, ORIG_ITERS)
    base = (['train.py', '--stage', 3, '--davis_root', davis, '--yv_root', yt,
             '--load_network', s0, '-i', n, '--steps', s['steps'],
             '--bce_start_warm', s['bce_start_warm'], '--bce_end_warm', s['bce_end_warm']]
            + train_flags(dict(p, iters=n), os.path.join(out, 'saves'), seed, save_every))
    two_shot = ['--davis_data', split['davis'], '--yv_data', split['youtube']]
    bank_d, bank_y = bank_folders(out)
    arms = {
        'all': ['--yv_subset', 'none', '--davis_subset', 'none'],   # no synthetic video in them
        'naive': two_shot,
        'phase1': two_shot + ['--semi', '--semi_thres_upper', 0.9, '--end_warm', s['end_warm'],
                              '--use_teacher', '--ema_alpha', s['ema_alpha']],
        'phase2': two_shot + ['--phase2_davis', bank_d, '--phase2_yv', bank_y,
                              '--phase2_train', 0, '--phase2_thres', 0.99,
                              '--phase2_start_update', s['phase2_start_update']],
    }
    return {arm: base + ['--id', f'{arm}_s{seed}'] + flags for arm, flags in arms.items()}


def bank_folders(out):
    return os.path.join(out, 'bank', 'davis'), os.path.join(out, 'bank', 'youtube')


def evaluate(run, p, data, model, folder, name):
    """eval_davis.py --evaluate of one model on the validation videos; returns its measures
    and {'videos': {video: [[J, F] per object]}}."""
    run(name, ['eval_davis.py', '--model', model, '--davis_path', os.path.join(data, 'DAVIS'),
               '--split', 'val', '--output', folder, '--evaluate'] + device_flags(p))
    return dict(read_global(folder, 'val'), videos=read_videos(folder, 'val'))


def device_flags(p):
    return ['--device', p['device']] if p['device'] else []


def train_two_shot(run, p, data, s0, out, seed, split):
    """Phase 1, its bank, phase 2 (from the stage-0 weights, on that bank) and their
    evaluations, and the bank's against the hidden labels; returns {arm: measures}."""
    n, tag = p['iters'], f's{seed}'
    cmds = arm_commands(p, data, s0, out, seed, split, n)
    saves = os.path.join(out, 'saves')
    davis, yt = os.path.join(data, 'DAVIS'), os.path.join(data, 'YouTube')
    bank_d, bank_y = bank_folders(out)
    run(f'{tag}_train_phase1', cmds['phase1'])
    phase1 = latest(saves, f'phase1_{tag}', n)
    run(f'{tag}_bank_davis', ['eval_youtube_bank.py', '--model', phase1, '--davis', '--davis_path',
                              davis, '--mem_every', 5, '--data_file', split['davis_gt'],
                              '--output', bank_d] + device_flags(p))
    run(f'{tag}_bank_youtube', ['eval_youtube_bank.py', '--model', phase1, '--yv_path', yt,
                                '--res', -1, '--data_file', split['yv_gt'], '--output', bank_y]
        + device_flags(p))
    run(f'{tag}_train_phase2', cmds['phase2'])
    res = {arm: evaluate(run, p, data, model, os.path.join(out, 'eval', arm), f'{tag}_eval_{arm}')
           for arm, model in (('phase1', phase1),
                              ('phase2', latest(saves, f'phase2_{tag}', n)))}
    d_ann, d_list, _ = train_annotations(data)
    folder = os.path.join(out, 'eval', 'bank_davis')
    run(f'{tag}_eval_bank_davis', ['-m', 'scripts.evaluate', '--gt_path',
                                   d_ann.rsplit(os.sep, 2)[0], '--split', 'train', '--imageset',
                                   d_list, '--pred_path', bank_output(bank_d), '--out', folder])
    res['bank'] = dict(read_global(folder, 'train'), videos=read_videos(folder, 'train'))
    return res


def train_full_and_naive(run, p, data, s0, out, seed, split):
    """The all-labels and naive arms and their evaluations; returns {arm: measures}."""
    n, tag = p['iters'], f's{seed}'
    cmds = arm_commands(p, data, s0, out, seed, split, n)
    res = {}
    for arm in ('all', 'naive'):
        run(f'{tag}_train_{arm}', cmds[arm])
        res[arm] = evaluate(run, p, data, latest(os.path.join(out, 'saves'), f'{arm}_{tag}', n),
                            os.path.join(out, 'eval', arm), f'{tag}_eval_{arm}')
    return res


def log_stats(log):
    """Training curve summary of one train.py log: {key: mean over the logged second half}.

    Keys are those train.py prints (loss/*, iou/*, pseudo/coverage, pseudo/refresh_*)."""
    points = []
    with open(log) as f:
        for line in f:
            if line.startswith('it ') and ': ' in line:
                head, _, rest = line.partition(': ')
                vals = {}
                for kv in rest.strip().split(', '):
                    k, _, v = kv.partition(' ')
                    try:
                        vals[k] = float(v)
                    except ValueError:
                        pass
                points.append((int(head.split()[1].split('/')[0]), vals))
    if not points:
        return {}
    last_it = points[-1][0]
    half = [v for it, v in points if it > last_it / 2] or [points[-1][1]]
    keys = sorted({k for v in half for k in v if k != 'time/sec_per_it'})
    return {k: round(sum(v[k] for v in half if k in v) / sum(k in v for v in half), 4)
            for k in keys}


def t975(df):
    """0.975 quantile of Student's t with df degrees of freedom (two-sided 95 % interval)."""
    if df <= len(T975):
        return T975[df - 1]
    return 1.960 + 2.4 / df                    # within 0.003 of the quantile above df 30


def sample_sd(xs):
    if len(xs) < 2:
        return None
    mean = sum(xs) / len(xs)
    return math.sqrt(sum((x - mean) ** 2 for x in xs) / (len(xs) - 1))


def summarise(per_seed):
    """{row: {measure: {'mean', 'std', 'values'}}} over the seeds (std: sample, n-1)."""
    rows = {}
    for row in ('stage0',) + ARMS + ('bank',):
        vals = [r[row] for r in per_seed if r.get(row) is not None]
        if not vals:
            continue
        rows[row] = {}
        for m in MEASURES:
            xs = [v[m] for v in vals]
            rows[row][m] = {'mean': round(sum(xs) / len(xs), 4),
                            'std': round(sample_sd(xs) or 0.0, 4), 'values': xs}
    return rows


def paired(per_seed):
    """Per-seed differences of the arms in DIFFS: {'a - b': {measure: {'values' (one per
    seed), 'mean', 'sd', 'ci95' (t-interval over the seeds; None for one seed), 'positive',
    'negative'}}}. Both arms of a seed share the stage-0 weights, labeled frames and seed."""
    out = {}
    for a, b in DIFFS:
        out[f'{a} - {b}'] = {}
        for m in MEASURES:
            ds = [round(r[a][m] - r[b][m], 4) for r in per_seed]
            mean, sd = sum(ds) / len(ds), sample_sd(ds)
            half = None if sd is None else t975(len(ds) - 1) * sd / math.sqrt(len(ds))
            out[f'{a} - {b}'][m] = {
                'values': ds, 'mean': round(mean, 4),
                'sd': None if sd is None else round(sd, 4),
                'ci95': None if half is None else [round(mean - half, 4), round(mean + half, 4)],
                'positive': sum(d > 0 for d in ds), 'negative': sum(d < 0 for d in ds)}
    return out


def jf_mean(videos, names):
    """J&F-Mean over the objects of the listed videos (a video listed twice counts twice)."""
    objs = [o for n in names for o in videos[n]]
    return (sum(o[0] for o in objs) + sum(o[1] for o in objs)) / (2 * len(objs))


def bootstrap(res, pairs, draws=BOOT_DRAWS, seed=0):
    """Evaluation-only noise of one seed's models: the sd of J&F-Mean, and of the pairs'
    differences, over resamplings of the validation videos with replacement (every model
    scored on the same resamples). res: {arm: {'videos': {video: [[J, F] per object]}}}."""
    arms = sorted({arm for pair in pairs for arm in pair})
    names = sorted(res[arms[0]]['videos'])
    rng = random.Random(seed)
    samples = [[rng.choice(names) for _ in names] for _ in range(draws)]
    jf = {arm: [jf_mean(res[arm]['videos'], s) for s in samples] for arm in arms}
    sd = {arm: round(sample_sd(jf[arm]), 4) for arm in arms}
    for a, b in pairs:
        sd[f'{a} - {b}'] = round(sample_sd([x - y for x, y in zip(jf[a], jf[b])]), 4)
    return {'videos': len(names), 'draws': draws, 'sd': sd}


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


def saved(save_root, run_id, it):
    return bool(glob.glob(os.path.join(save_root, f'*_{run_id}', f'*_{run_id}_{it}.pth')))


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
