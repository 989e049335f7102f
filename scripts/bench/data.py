"""Training data pipeline: samples per second one worker loads, in every data mode, and how
many workers a given training step needs.

    python -m scripts.bench.data [--modes full warmup semi phase2 static bl30k] [--samples 8]
        [--step_time 0.5 --batch 4] [--workers 1 4 8] [--json OUT] [-- TRAIN.PY FLAGS]

Each mode's data is built exactly as train.py builds it (dataset.training_data.DataMix, the
curriculum's starting frame skip, dataset.sampling.SeededSamples seeding), and --samples samples are loaded one after
another in this process with one torch thread, as a DataLoader worker loads them: samples/s
per worker = 1 / (seconds per sample). Modes:
  full     stage 3, DAVIS + YouTube, every frame labeled
  warmup   stage 3 two-shot before --end_warm (labeled frames only)
  semi     stage 3 two-shot after --end_warm (triplets with unlabeled frames)
  phase2   stage 3 on the pseudo-label banks
  static   stage 0, the static image sets
  bl30k    stage 1, BL30K
With --step_time S (seconds of one training step, e.g. from scripts.bench.train) the
workers needed to keep up are ceil(batch * seconds per sample / S). --workers N... also runs
the trainer's DataLoader set-up with N workers and reports its batches/s against the step.

Data: without train.py flags, a synthetic set (scripts.data.synthetic_data) at --height x --width
(480x854) is written to a temporary folder (or --data_dir, kept) and its annotations stand in
for the pseudo-label banks. With train.py flags after `--` (--davis_root, --yv_root, --davis_data,
--yv_data, --phase2_davis, --phase2_yv, --static_root, --bl_root, --crop_size), those data
sets are read; a mode whose data is not given fails with the trainer's own one-line error.
"""
import argparse
import os
import tempfile
import time

import torch
from torch.utils.data import DataLoader

from dataset.data_mode import BASE, PHASE2, SEMI
from dataset.reseed import WorkerInit
from dataset.sampling import EpochSampler, SeededSamples
from dataset.training_data import START_SKIP, DataMix
from scripts.bench.common import describe_device, load_note, median, write_json
from util.errors import UserError, run_main
from util.hyper_para import HyperParameters
from util.resume import QuietWorkerInit, close_batches
from util.speed import workers_needed

MODES = ('full', 'warmup', 'semi', 'phase2', 'static', 'bl30k')


def parse_args(argv):
    argv = list(argv)
    train_flags = []
    if '--' in argv:
        cut = argv.index('--')
        argv, train_flags = argv[:cut], argv[cut + 1:]
    p = argparse.ArgumentParser(description='Samples/s per data worker in every training '
                                            'data mode, and the workers a step needs.')
    p.add_argument('--modes', nargs='+', default=list(MODES), choices=MODES)
    p.add_argument('--samples', type=int, default=8, help='timed samples per mode')
    p.add_argument('--batch', type=int, default=4, help='batch size per process')
    p.add_argument('--crop', type=int, default=384, help='crop size (train.py --crop_size)')
    p.add_argument('--step_time', type=float, default=None,
                   help='seconds of one training step: report the workers it needs')
    p.add_argument('--workers', type=int, nargs='*', default=[],
                   help='also time the real DataLoader with these worker counts')
    p.add_argument('--batches', type=int, default=6,
                   help='timed batches per worker count (after the first)')
    p.add_argument('--height', type=int, default=480, help='synthetic frame height')
    p.add_argument('--width', type=int, default=854, help='synthetic frame width')
    p.add_argument('--data_dir', default=None, help='keep the synthetic data here')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--json', default=None, help='also write the results to this JSON file')
    p.add_argument('--debug', action='store_true', help='full tracebacks on errors')
    args = p.parse_args(argv)
    if args.samples < 1 or args.batch < 1 or args.batches < 1:
        p.error('--samples, --batch and --batches must be >= 1')
    if any(w < 0 for w in args.workers):
        p.error('--workers must be >= 0')
    if args.step_time is not None and args.step_time <= 0:
        p.error('--step_time must be > 0')
    args.train_flags = train_flags
    return args


def synthetic_flags(root, height, width, seed):
    """Write a small synthetic copy of every data set under root -> train.py flags."""
    from scripts.data.synthetic_data import generate
    size = dict(height=height, width=width, seed=seed)
    d = generate(root, 'davis', videos=4, frames=8, objects=2, val_videos=1, **size)
    y = generate(root, 'youtube', videos=3, frames=8, objects=2, val_videos=0, **size)
    s = generate(root, 'static', videos=4, **size)
    b = generate(root, 'bl30k', videos=4, frames=8, objects=2, **size)
    return ['--davis_root', d['root'], '--yv_root', y['root'], '--davis_data', d['split'],
            '--yv_data', y['split'], '--static_root', s['root'], '--bl_root', b['root'],
            '--phase2_davis', os.path.join(d['trainval'], 'Annotations', '480p'),
            '--phase2_yv', os.path.join(y['train_480p'], 'Annotations'),
            '--yv_subset', 'none', '--davis_subset', 'none']    # not STCN's video names


def mode_para(mode, base_flags, args):
    """(trainer parameters, train.py data mode) of one benchmark mode."""
    flags = [f for f in base_flags]
    extra = {'full': ['--stage', '3'], 'warmup': ['--stage', '3'],
             'semi': ['--stage', '3', '--semi', '--end_warm', '0'],
             'phase2': ['--stage', '3', '--phase2_train', '0'],
             'static': ['--stage', '0'], 'bl30k': ['--stage', '1']}[mode]
    para = HyperParameters().parse(['--crop_size', str(args.crop), '-b', str(args.batch),
                                    '--seed', str(args.seed)] + flags + extra)
    if mode == 'full' or mode in ('static', 'bl30k'):
        para['davis_data'] = para['yv_data'] = None
    if mode != 'phase2':
        para['phase2_davis'] = para['phase2_yv'] = None
    elif not (para['phase2_davis'] or para['phase2_yv']):
        raise UserError('phase2: give --phase2_davis and/or --phase2_yv after --')
    if mode in ('warmup', 'semi') and not (para['davis_data'] or para['yv_data']):
        raise UserError(f'{mode}: give --davis_data and/or --yv_data after --')
    return para, {'phase2': PHASE2, 'semi': SEMI}.get(mode, BASE)


def per_worker(para, mode, n, seed):
    """Seconds of each of n samples loaded in turn in this process (one torch thread)."""
    mix = DataMix(para, mode)
    mix.set_max_skip(START_SKIP)
    samples = SeededSamples(mix.dataset)
    sampler = EpochSampler(len(mix.dataset), 1, 0, seed, mode)
    order = [item for _, item in zip(range(n + 1), _cycle(sampler))]
    samples[order[0]]                                        # untimed: caches, first decode
    times = []
    for item in order[1:]:
        start = time.perf_counter()
        samples[item]
        times.append(time.perf_counter() - start)
    return times, len(mix.dataset)


def _cycle(sampler):
    epoch = 0
    while True:
        sampler.set_epoch(epoch)
        yield from sampler
        epoch += 1


def loader_rate(para, mode, workers, batches, seed):
    """Batches per second of the trainer's DataLoader set-up (SeededSamples, the worker
    init, drop_last) with `workers` workers over (batches + 1) batches of the epoch order,
    continued into the next epochs without restarting the workers; the first batch, which
    waits for the workers to start, is untimed."""
    mix = DataMix(para, mode)
    mix.set_max_skip(START_SKIP)
    sampler = EpochSampler(len(mix.dataset), 1, 0, seed, mode)
    items = [item for _, item in zip(range((batches + 1) * para['batch_size']),
                                     _cycle(sampler))]
    loader = DataLoader(SeededSamples(mix.dataset), batch_size=para['batch_size'],
                        sampler=items, num_workers=workers, drop_last=True,
                        worker_init_fn=QuietWorkerInit(WorkerInit(seed, 0)))
    it = iter(loader)
    try:
        next(it)
        start = time.perf_counter()
        for _ in it:
            pass
    finally:
        close_batches(it)
    return batches / (time.perf_counter() - start)


def main(argv):
    args = parse_args(argv)
    threads = torch.get_num_threads()
    with tempfile.TemporaryDirectory(prefix='bench_data_') as tmp:
        flags = args.train_flags
        if not flags:
            root = args.data_dir or tmp
            os.makedirs(root, exist_ok=True)
            flags = synthetic_flags(root, args.height, args.width, args.seed)
            source = f'synthetic {args.height}x{args.width} frames'
        else:
            source = 'train.py flags: ' + ' '.join(flags)
        print(f'machine: {describe_device("cpu")}; {load_note()}')
        print(f'data: {source}; crop {args.crop}, batch {args.batch}; {args.samples} samples '
              'per mode, one after another in one process with 1 torch thread (= one worker)',
              flush=True)
        results = {'machine': describe_device('cpu'), 'args': vars(args), 'modes': {}}
        for mode in args.modes:
            para, data_mode = mode_para(mode, flags, args)
            torch.set_num_threads(1)
            try:
                times, n = per_worker(para, data_mode, args.samples, args.seed)
            finally:
                torch.set_num_threads(threads)
            sec = median(times)
            r = {'dataset_samples': n, 'sample_seconds': times, 'median_sample_s': sec,
                 'samples_per_s_per_worker': 1.0 / sec}
            line = (f'{mode:<7} {1.0 / sec:7.2f} samples/s per worker ({sec * 1000:.0f} ms '
                    f'per sample, median of {len(times)}; {n} samples in the data set)')
            if args.step_time:
                r['workers_needed'] = workers_needed(sec, args.batch, args.step_time)
                line += (f'; a {args.step_time:.3f} s step at batch {args.batch} needs '
                         f'{r["workers_needed"]} worker(s)')
            print(line, flush=True)
            for w in args.workers:
                rate = loader_rate(para, data_mode, w, args.batches, args.seed)
                r.setdefault('loader', {})[str(w)] = rate
                vs = ''
                if args.step_time:
                    vs = (f' against {1 / args.step_time:.2f} steps/s: '
                          + ('keeps up' if rate >= 1 / args.step_time else 'the step waits'))
                print(f'{mode:<7}   DataLoader, {w} workers: {rate:.2f} batches/s = '
                      f'{rate * args.batch:.2f} samples/s{vs}', flush=True)
            results['modes'][mode] = r
    results['load_at_end'] = load_note()
    print(load_note())
    if args.json:
        write_json(args.json, results)
    return 0


if __name__ == '__main__':
    run_main(main)
