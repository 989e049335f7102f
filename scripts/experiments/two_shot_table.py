"""The paper's comparison at toy scale: all labels vs naive two-shot vs phase 1 vs phase 2.

    python scripts/experiments/two_shot_table.py --preset {cpu,gpu,tiny} [--seeds 3] [--out DIR]
        [--jobs N] [--threads N]

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
EMA time constant) are scaled to the iteration budget. Writes OUT/two_shot_table.json,
OUT/two_shot_table.png (bars: mean over seeds, error bars: sample std) and prints the table.
docs/experiments.md explains the toy's design and lists measured tables.
"""
import argparse
import csv
import glob
import hashlib
import json
import math
import os
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
from util.outputs import check_folder_output  # noqa: E402
from util.layout import bank_output  # noqa: E402

ARMS = ('all', 'naive', 'phase1', 'phase2')
ARM_LABELS = {'all': 'STCN, all labels', 'naive': 'naive two-shot (2 labels only)',
              'phase1': 'two-shot phase 1', 'phase2': 'two-shot phase 2',
              'bank': 'phase-1 bank vs hidden labels', 'stage0': 'stage-0 start (no video)'}
MEASURES = ('J&F-Mean', 'J-Mean', 'F-Mean')

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
    # training: crop, batch, lr, stage-0 and per-arm iterations; device
    'tiny': dict(davis_train=2, davis_val=1, yt_train=1, static=2, frames=6, max_frames=7,
                 height=48, width=64, drift=0.5, crop=32, batch=2, lr=1e-4, iters0=2,
                 iters=3, device='cpu', workers=0, threads=1),
    'cpu': dict(davis_train=8, davis_val=3, yt_train=4, static=40, frames=20, max_frames=40,
                height=80, width=144, drift=0.5, crop=64, batch=4, lr=1e-4, iters0=150,
                iters=120, device='cpu', workers=1, threads=2),
    'gpu': dict(davis_train=20, davis_val=6, yt_train=20, static=200, frames=20, max_frames=40,
                height=192, width=320, drift=0.5, crop=192, batch=8, lr=1e-4, iters0=1000,
                iters=600, device='cuda', workers=6, threads=None),
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
        if not self.quiet:
            print(f'+ {" ".join(shlex.quote(c) for c in cmd)}', flush=True)
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


def train_flags(p, save_root, seed):
    flags = ['--lr', p['lr'], '-b', p['batch'], '--crop_size', p['crop'],
             '--num_workers', p['workers'], '--save_root', save_root, '--seed', seed,
             '--log_every', max(1, p['iters'] // 20), '--save_every', 10 ** 9]
    return flags + (['--device', p['device']] if p['device'] else [])


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


def run_seed(run, p, data, s0, out, seed):
    """Train and evaluate every arm for one seed; returns {arm: measures}."""
    davis, yt = os.path.join(data, 'DAVIS'), os.path.join(data, 'YouTube')
    d_ann = os.path.join(davis, '2017', 'trainval', 'Annotations', '480p')
    d_list = os.path.join(davis, '2017', 'trainval', 'ImageSets', '2017', 'train.txt')
    y_ann = os.path.join(yt, 'train_480p', 'Annotations')
    tag = f's{seed}'
    split = os.path.join(out, 'split')
    d_split, y_split = (os.path.join(split, n) for n in ('davis_rand_2frames.json',
                                                          'yv_rand_2frames.json'))
    d_gt, y_gt = os.path.join(split, 'davis_gt'), os.path.join(split, 'yv_gt_480p')
    run(f'{tag}_split_davis', ['-m', 'phase2_scripts.make_two_shot_split', '--annotations', d_ann,
                               '--video_list', d_list, '--seed', seed, '--out', d_split])
    run(f'{tag}_split_youtube', ['-m', 'phase2_scripts.make_two_shot_split', '--annotations', y_ann,
                                 '--seed', seed, '--out', y_split])
    run(f'{tag}_sparse_davis', ['phase2_scripts/prepare_sparse_gt.py', '--annotations', d_ann,
                                '--split', d_split, '--out', d_gt])
    run(f'{tag}_sparse_youtube', ['phase2_scripts/prepare_sparse_gt.py', '--annotations', y_ann,
                                  '--split', y_split, '--out', y_gt])

    n = p['iters']
    s = scaled_schedule(n, ORIG, ORIG_ITERS)
    saves = os.path.join(out, 'saves')
    base = (['train.py', '--stage', 3, '--davis_root', davis, '--yv_root', yt,
             '--load_network', s0, '-i', n, '--steps', s['steps'],
             '--bce_start_warm', s['bce_start_warm'], '--bce_end_warm', s['bce_end_warm']]
            + train_flags(p, saves, seed))
    two_shot = ['--davis_data', d_split, '--yv_data', y_split]
    bank_d, bank_y = (os.path.abspath(os.path.join(out, 'bank', d)) for d in ('davis', 'youtube'))
    arms = {
        'all': ['--yv_subset', 'none', '--davis_subset', 'none'],   # no synthetic video in them
        'naive': two_shot,
        'phase1': two_shot + ['--semi', '--semi_thres_upper', 0.9, '--end_warm', s['end_warm'],
                              '--use_teacher', '--ema_alpha', s['ema_alpha']],
        'phase2': two_shot + ['--phase2_davis', bank_d, '--phase2_yv', bank_y,
                              '--phase2_train', 0, '--phase2_thres', 0.99,
                              '--phase2_start_update', s['phase2_start_update']],
    }
    dev = ['--device', p['device']] if p['device'] else []
    ckpt = {}
    for arm in ARMS:
        if arm == 'phase2':          # the bank of the phase-1 model, then phase 2 on it
            run(f'{tag}_bank_davis', ['eval_youtube_bank.py', '--model', ckpt['phase1'],
                                      '--davis', '--davis_path', davis, '--mem_every', 5,
                                      '--data_file', d_gt, '--output', bank_d] + dev)
            run(f'{tag}_bank_youtube', ['eval_youtube_bank.py', '--model', ckpt['phase1'],
                                        '--yv_path', yt, '--res', -1, '--data_file', y_gt,
                                        '--output', bank_y] + dev)
        run(f'{tag}_train_{arm}', base + ['--id', f'{arm}_{tag}'] + arms[arm])
        ckpt[arm] = latest(saves, f'{arm}_{tag}', n)
    results = {}
    for arm in ('stage0',) + ARMS:
        model = s0 if arm == 'stage0' else ckpt[arm]
        folder = os.path.join(out, 'eval', arm)
        if arm == 'stage0' and seed > 0:      # the same weights and data for every seed
            results[arm] = None
            continue
        run(f'{tag}_eval_{arm}', ['eval_davis.py', '--model', model, '--davis_path', davis,
                                  '--split', 'val', '--output', folder, '--evaluate'] + dev)
        results[arm] = read_global(folder, 'val')
    run(f'{tag}_eval_bank_davis', ['-m', 'scripts.evaluate', '--gt_path', d_ann.rsplit(os.sep, 2)[0],
                                   '--split', 'train', '--imageset', d_list,
                                   '--pred_path', bank_output(bank_d), '--out',
                                   os.path.join(out, 'eval', 'bank_davis')])
    results['bank'] = read_global(os.path.join(out, 'eval', 'bank_davis'), 'train')
    results['curves'] = {arm: log_stats(os.path.join(run.logs, f'{tag}_train_{arm}.log'))
                         for arm in ARMS}
    return results


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
            mean = sum(xs) / len(xs)
            std = math.sqrt(sum((x - mean) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 \
                else 0.0
            rows[row][m] = {'mean': round(mean, 4), 'std': round(std, 4), 'values': xs}
    return rows


def format_table(rows, n_seeds):
    labels = dict(ARM_LABELS, bank='phase-1 bank vs hidden labels (DAVIS train)')
    width = max(len(labels[r]) for r in rows)
    lines = [f'{"":{width}}  ' + '  '.join(f'{m:>13}' for m in MEASURES) + '  seeds']
    for r, ms in rows.items():
        n = len(ms['J&F-Mean']['values'])
        lines.append(f'{labels[r]:{width}}  ' + '  '.join(
            f'{ms[m]["mean"]:6.3f} ± {ms[m]["std"]:.3f}' for m in MEASURES) + f'  {n}')
    return '\n'.join(lines)


def plot(rows, path, title):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    names = list(rows)
    fig, ax = plt.subplots(figsize=(8, 4))
    xs = range(len(names))
    for i, m in enumerate(MEASURES):
        ax.bar([x + (i - 1) * 0.27 for x in xs], [rows[r][m]['mean'] for r in names], 0.27,
               yerr=[rows[r][m]['std'] for r in names], capsize=3, label=m)
    ax.set_xticks(list(xs))
    ax.set_xticklabels([{'bank': 'bank (train)'}.get(r, r) for r in names])
    ax.set_ylim(0, 1)
    ax.set_ylabel('score (DAVIS-layout val; bank: train)')
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    tmp = path + '.tmp.png'
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    os.replace(tmp, path)


def write_results(out, a, p, per_seed, step_seconds, seconds, seeds):
    """Write the JSON and the PNG of the seeds done so far; returns (table, json, png)."""
    rows = summarise(per_seed)
    table = format_table(rows, len(per_seed))
    result = {'preset': a.preset, 'params': p, 'seeds': seeds, 'jobs': a.jobs,
              'seeds_requested': a.seeds, 'complete': len(per_seed) == a.seeds,
              'schedule': scaled_schedule(p['iters'], ORIG, ORIG_ITERS),
              'schedule_stage0': scaled_schedule(p['iters0'], ORIG_S0, ORIG_S0['iters']),
              'command': ' '.join(shlex.quote(x) for x in ['python'] + sys.argv),
              'seconds': seconds, 'step_seconds': step_seconds, 'per_seed': per_seed,
              'rows': rows, 'table': table}
    js = os.path.join(out, 'two_shot_table.json')
    with open(js + '.tmp', 'w') as f:
        json.dump(result, f, indent=1)
    os.replace(js + '.tmp', js)
    png = os.path.join(out, 'two_shot_table.png')
    plot(rows, png, f'two-shot toy, preset {a.preset}: mean ± std over {len(per_seed)} seed(s), '
                    f'{p["iters"]} iterations per arm')
    return table, js, png


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--preset', required=True, choices=sorted(PRESETS))
    ap.add_argument('--seeds', type=int, default=3, help='seeds 0..N-1 (split + training seed)')
    ap.add_argument('--out', default=None, help='output folder (default two_shot_<preset>)')
    ap.add_argument('--jobs', type=int, default=1,
                    help='seeds trained at the same time after the shared stage 0 (default 1)')
    ap.add_argument('--device', default=None, help="override the preset's device")
    ap.add_argument('--threads', type=int, default=None,
                    help="override the preset's OMP_NUM_THREADS per command (e.g. 1 on a CPU "
                         "shared with another job: two threads contending for two cores spin)")
    ap.add_argument('--quiet', action='store_true', help='do not echo the commands')
    ap.add_argument('--debug', action='store_true', help='full tracebacks on errors')
    a = ap.parse_args(argv)
    if a.seeds < 1 or a.jobs < 1:
        ap.error('--seeds and --jobs must be >= 1')
    return a


def main(argv):
    a = parse_args(argv)
    p = dict(PRESETS[a.preset])
    if a.device:
        p['device'] = a.device
    if a.threads:
        p['threads'] = a.threads
    if p['device']:
        pick_device(p['device'])                   # an unknown or absent device: refused now
    out = os.path.abspath(a.out or f'two_shot_{a.preset}')
    check_folder_output(out, 'experiment folder (--out)')
    os.makedirs(out, exist_ok=True)
    run = Runner(out, p['threads'], a.quiet)
    start = time.time()
    data_keys = ('davis_train', 'davis_val', 'yt_train', 'static', 'frames', 'max_frames',
                 'height', 'width', 'drift')
    data_p = {k: p[k] for k in data_keys}
    data = os.path.join(out, 'cache', 'data')
    cached(data, digest(data_p), lambda d: make_data(run, p, d, 0))
    s0_p = dict(data_p, **{k: p[k] for k in ('crop', 'batch', 'lr', 'iters0', 'device')})
    s0_dir = os.path.join(out, 'cache', 'stage0')
    cached(s0_dir, digest(s0_p), lambda d: make_stage0(run, p, data, d))
    s0 = os.path.join(s0_dir, 's0.pth')
    def one_seed(seed):
        folder = os.path.join(out, f'seed{seed}')
        shutil.rmtree(folder, ignore_errors=True)
        return run_seed(run, p, data, s0, folder, seed)

    done = {}
    with ThreadPoolExecutor(max_workers=a.jobs) as pool:    # each seed: its own subprocesses
        futures = {pool.submit(one_seed, seed): seed for seed in range(a.seeds)}
        for fut in as_completed(futures):
            done[futures[fut]] = fut.result()
            seconds = round(time.time() - start)
            per_seed = [done[k] for k in sorted(done)]
            table, js, png = write_results(out, a, p, per_seed, run.seconds, seconds,
                                           sorted(done))
            if len(done) < a.seeds:        # partial results after each seed
                print(f'after seed(s) {sorted(done)} ({seconds} s):\n{table}', flush=True)
    print(table)
    print(f'wall time: {seconds // 60} min {seconds % 60} s')
    print(f'wrote {js} and {png}')
    return 0


if __name__ == '__main__':
    run_main(main)
