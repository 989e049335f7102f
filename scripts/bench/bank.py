"""Intermediate inference benchmark: the four full passes + merge against eval_youtube_bank.py.

    python -m scripts.bench.bank [--layout davis --videos 2 --frames 24 --height 480
        --width 854 --objects 2 --repeats 1 --device cpu --threads N --model PATH --json OUT]

Writes a seeded synthetic data set (scripts.data.synthetic_data: frames, full labels, a random two-shot
split and its sparse label folder) in a temporary folder, then produces the pseudo-label bank
of its training videos in two ways, in one process, with the same network (seeded random
weights or --model), in turns (the order alternates over --repeats):
  four   eval_youtube_phase2.main for the passes left, leftsecgt, right, rightsecgt (each a whole
         Annotations tree, as run_intermediate.sh runs them), then phase2.merge.merge
  bank   eval_youtube_bank.main (each pass only as far as the merge uses it)
Reported for each: frames segmented, processing seconds (IO excluded, summed over the
videos as the eval scripts report FPS), wall seconds (reading frames, writing PNGs and the
merge included; the network is built once, outside the timing) and the four/bank ratios;
the two banks are compared byte for byte. Figures are the best of --repeats.
"""
import argparse
import filecmp
import os
import shutil
import tempfile
import time

import torch

import eval_driver
import eval_youtube_bank
import eval_youtube_phase2
from model.eval_network import STCN
from phase2.bank import PASS_FLAGS
from phase2.merge import PASS_NAMES, merge
from scripts.bench.common import describe_device, load_note, write_json
from scripts.data import synthetic_data
from util.device import pick_device
from util.errors import UserError, run_main
from util.layout import bank_labels, list_videos


def parse_args(argv):
    p = argparse.ArgumentParser(description='Time the four intermediate passes + merge '
                                            'against eval_youtube_bank.py.')
    p.add_argument('--layout', default='davis', choices=['davis', 'youtube'],
                   help='davis: 480p DAVIS-style memory, mem_every 5; youtube: train_480p, '
                        'mem_every 1')
    p.add_argument('--videos', type=int, default=2, help='training videos')
    p.add_argument('--frames', type=int, default=24, help='frames per video')
    p.add_argument('--height', type=int, default=480)
    p.add_argument('--width', type=int, default=854)
    p.add_argument('--objects', type=int, default=2)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--repeats', type=int, default=1)
    p.add_argument('--device', default=None, help='cpu, cuda, cuda:N (default: CUDA if present)')
    p.add_argument('--threads', type=int, default=None, help='torch CPU threads')
    p.add_argument('--model', default=None, help='weights to load (default: seeded random)')
    p.add_argument('--eval_args', nargs=argparse.REMAINDER, default=[],
                   help='more eval_youtube_phase2.py flags for both ways (e.g. --amp), last')
    p.add_argument('--json', default=None, help='also write the results to this JSON file')
    p.add_argument('--debug', action='store_true', help='full tracebacks on errors')
    return p.parse_args(argv)


def make_data(tmp, args):
    """Synthetic data set -> (intermediate inference data flags, {video: labeled frame names})."""
    if args.layout == 'davis':
        d = synthetic_data.generate(tmp, 'davis', videos=args.videos + 1, frames=args.frames,
                               height=args.height, width=args.width, objects=args.objects,
                               seed=args.seed, val_videos=1)
        flags = ['--davis', '--davis_path', d['root'], '--mem_every', '5']
    else:
        d = synthetic_data.generate(tmp, 'youtube', videos=args.videos, frames=args.frames,
                               height=args.height, width=args.width, objects=args.objects,
                               seed=args.seed, val_videos=1)
        flags = ['--yv_path', d['root'], '--res', '-1']
    sparse = d['sparse']
    labels = {v: sorted(os.listdir(os.path.join(sparse, v))) for v in sorted(os.listdir(sparse))}
    return flags + ['--data_file', sparse], labels


def run_four(out, base):
    """The four passes and the merge -> (frames, processing s, wall s, bank folder)."""
    start = time.perf_counter()
    frames, seconds = 0, 0.0
    trees = {}
    for name in PASS_NAMES:
        reverse, only_sec_gt = PASS_FLAGS[name]
        trees[name] = os.path.join(out, name)
        s = eval_youtube_phase2.main(base + ['--output', trees[name]]
                                     + (['--reverse'] if reverse else [])
                                     + (['--only_sec_gt'] if only_sec_gt else []))
        frames, seconds = frames + s['frames'], seconds + s['seconds']
    sparse = base[base.index('--data_file') + 1]
    bank = os.path.join(out, 'merged')
    merge(sparse, trees['left'], trees['leftsecgt'], trees['right'], trees['rightsecgt'], bank,
          progress=False)
    return frames, seconds, time.perf_counter() - start, bank


def run_bank(out, base):
    start = time.perf_counter()
    bank = os.path.join(out, 'bank')
    s = eval_youtube_bank.main(base + ['--output', bank])
    return s['frames'], s['seconds'], time.perf_counter() - start, bank


def same_banks(a, b):
    """True when both banks hold the same videos with byte-identical PNGs (hidden entries, such
    as an eval run's settings record, left out)."""
    a, b = bank_labels(a), bank_labels(b)
    videos = list_videos(a)
    if videos != list_videos(b):
        return False
    for v in videos:
        files = sorted(os.listdir(os.path.join(a, v)))
        if files != sorted(os.listdir(os.path.join(b, v))):
            return False
        _, mismatch, errors = filecmp.cmpfiles(os.path.join(a, v), os.path.join(b, v), files,
                                               shallow=False)
        if mismatch or errors:
            return False
    return True


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.videos < 1 or args.frames < 2 or args.repeats < 1:
        raise UserError('need --videos >= 1, --frames >= 2, --repeats >= 1')
    device = pick_device(args.device)
    torch.manual_seed(args.seed)
    net = STCN().to(device).eval()
    if args.model:
        from model.checkpoint import load_network
        load_network(net, args.model)
    real_load = eval_driver.load_model
    eval_driver.load_model = lambda path, dev, amp=False: net   # built once, outside the timing
    try:
        return measure(args, device)
    finally:
        eval_driver.load_model = real_load


def measure(args, device):
    print(f'device: {describe_device(device)}; {args.layout} layout, {args.videos} videos x '
          f'{args.frames} frames, {args.height}x{args.width}, {args.objects} objects',
          flush=True)
    results = {'device': describe_device(device), 'args': vars(args), 'runs': [],
               'identical': True}
    with tempfile.TemporaryDirectory(prefix='bench_bank_') as tmp:
        data, labels = make_data(tmp, args)
        print('labeled frames: ' + '; '.join(f'{v} {" ".join(n)}' for v, n in labels.items()))
        base = ['--model', 'unused', '--device', str(device)] + data + args.eval_args
        best = {}
        for r in range(args.repeats):
            order = ['four', 'bank'] if r % 2 == 0 else ['bank', 'four']
            outs = {}
            for way in order:
                run_way = run_four if way == 'four' else run_bank
                frames, secs, wall, outs[way] = run_way(os.path.join(tmp, f'{way}_{r}'), base)
                run = {'way': way, 'repeat': r, 'frames': frames, 'seconds': secs,
                       'wall_seconds': wall, 'load': load_note()}
                results['runs'].append(run)
                if way not in best or secs < best[way]['seconds']:
                    best[way] = run
            results['identical'] &= same_banks(outs['four'], outs['bank'])
            for way in order:
                shutil.rmtree(os.path.join(tmp, f'{way}_{r}'))
    f, b = best['four'], best['bank']
    results['ratio_frames'] = f['frames'] / b['frames']
    results['speedup_processing'] = f['seconds'] / b['seconds']
    results['speedup_wall'] = f['wall_seconds'] / b['wall_seconds']
    print(f'\n{"way":<6}{"frames":>8}{"proc s":>10}{"wall s":>10}{"FPS":>8}')
    for way, run in (('four', f), ('bank', b)):
        print(f'{way:<6}{run["frames"]:>8}{run["seconds"]:>10.2f}{run["wall_seconds"]:>10.2f}'
              f'{run["frames"] / run["seconds"]:>8.3f}')
    print(f'four/bank: frames x{results["ratio_frames"]:.2f}, processing '
          f'x{results["speedup_processing"]:.2f}, wall x{results["speedup_wall"]:.2f}; banks '
          f'{"byte-identical" if results["identical"] else "DIFFER"} ({load_note()})')
    if args.json:
        write_json(args.json, results)
    return 0 if results['identical'] else 1


if __name__ == '__main__':
    run_main(main)
