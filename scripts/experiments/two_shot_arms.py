"""The arms of the two-shot toy experiment (scripts.experiments.two_shot_table): presets, the
original's schedule scaled to a budget, and the project commands that build the data and the
stage-0 weights, train every arm and evaluate it."""
import csv
import glob
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import time

from util.errors import UserError
from util.layout import bank_output

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ARMS = ('all', 'naive', 'phase1', 'phase2')
MEASURES = ('J&F-Mean', 'J-Mean', 'F-Mean')
CURVE_ARMS = ('all', 'naive')                # the learning curve's arms (difference: a - b)

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


def saved(save_root, run_id, it):
    return bool(glob.glob(os.path.join(save_root, f'*_{run_id}', f'*_{run_id}_{it}.pth')))


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
