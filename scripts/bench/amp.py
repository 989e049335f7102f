"""AMP against fp32 on DAVIS 2017: speed, J&F and mask agreement of one model.

    python -m scripts.bench.amp --model M --davis_path ROOT [--split val] [--videos N]
        [--device cuda] [--cpu_bf16] [--processes N] [--json OUT]

Segments the DAVIS 2017 videos (val by default; --videos: only the first N of the image set)
with InferenceCore twice per video in one process, in fp32 and with AMP (the eval scripts'
--amp: fp16 autocast on CUDA; on a CPU bf16 where it computes bf16 natively; each way's model
loaded as the eval scripts load it), the order alternating from video to video, and reports per
way: FPS (frames /
processing seconds, IO excluded, as the eval scripts print it), J&F-Mean against the
annotations (scripts.evaluate, on the written PNGs), and the share of pixels whose mask differs
between the two ways, with where they lie: within EDGE_PX pixels of an object edge (in either
way's mask), and in object-frames the two ways disagree on as a whole (an object's masks of the
two ways overlapping by IoU < 0.5 in a frame where either way has it).

--processes N also times the whole process: `eval_davis.py` run N times per way (with and
without --amp, alternating), wall seconds from start to exit (imports, model loading, IO and
PNG writing included), best and median of the N.

On a CPU without native bf16, --amp runs in fp32; --cpu_bf16 autocasts in bf16 there anyway,
which checks the numerics but is slow (bf16 is emulated).
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

import video_runner
from dataset.davis_test_dataset import DAVISTestDataset
from dataset.eval_dataset import prefetch
from inference_core import InferenceConfig
from model import precision
from scripts.bench.common import describe_device, load_note, median, write_json
from util.device import pick_device
from util.errors import UserError, run_main
from util.image_io import write_mask
from util.metrics import evaluate

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

WAYS = ('fp32', 'amp')
EDGE_PX = 2


def near_edge(m, r=EDGE_PX):
    """bool [H, W]: pixels of the index mask m [H, W] with another label within r pixels
    (Chebyshev distance)."""
    h, w = m.shape
    pad = np.pad(m, r, mode='edge')
    out = np.zeros((h, w), bool)
    for dy in range(2 * r + 1):
        for dx in range(2 * r + 1):
            out |= pad[dy:dy + h, dx:dx + w] != m
    return out


def where_differ(a, b):
    """Two index masks [H, W] of one frame -> counts {'differ', 'at_edge', 'objects',
    'objects_whole', 'whole_pixels'}: differing pixels, those near an edge of a or b, the
    objects present in a or b, those the two masks disagree on as a whole (IoU < 0.5), and
    the differing pixels of those objects."""
    diff = a != b
    res = {'differ': int(diff.sum()), 'objects': 0, 'objects_whole': 0, 'whole_pixels': 0,
           'at_edge': int((diff & (near_edge(a) | near_edge(b))).sum()) if diff.any() else 0}
    whole = np.zeros_like(diff)
    for obj in np.union1d(np.unique(a), np.unique(b)):
        if obj == 0:
            continue
        ia, ib = a == obj, b == obj
        res['objects'] += 1
        if (ia & ib).sum() < 0.5 * (ia | ib).sum():
            res['objects_whole'] += 1
            whole |= diff & (ia | ib)
    res['whole_pixels'] = int(whole.sum())
    return res


def parse_args(argv):
    p = argparse.ArgumentParser(description='AMP against fp32: speed, J&F, mask agreement.')
    p.add_argument('--model', required=True, help='weights (any accepted checkpoint form)')
    p.add_argument('--davis_path', required=True, help='DAVIS root (holds 2017/)')
    p.add_argument('--split', default='val', choices=['val'])
    p.add_argument('--videos', type=int, default=None, help='only the first N videos')
    p.add_argument('--top', type=int, default=20)
    p.add_argument('--mem_every', type=int, default=5)
    p.add_argument('--device', default=None, help='cpu, cuda, cuda:N (default: CUDA if present)')
    p.add_argument('--cpu_bf16', action='store_true',
                   help='on a CPU: autocast in bf16 for the AMP way (a numerics check)')
    p.add_argument('--threads', type=int, default=None, help='torch CPU threads')
    p.add_argument('--processes', type=int, default=0,
                   help='also time N whole eval_davis.py processes per way')
    p.add_argument('--json', default=None, help='also write the results to this JSON file')
    p.add_argument('--debug', action='store_true', help='full tracebacks on errors')
    return p.parse_args(argv)


def segment_all(nets, dataset, out, device, top_k, mem_every):
    """Both ways (nets: {way: network}) over every video -> {way: {'frames', 'seconds'}},
    {'pixels', 'differ', ...: where_differ's counts summed}."""
    stats = {w: {'frames': 0, 'seconds': 0.0} for w in WAYS}
    agree = {'pixels': 0, 'differ': 0, 'at_edge': 0, 'objects': 0, 'objects_whole': 0,
             'whole_pixels': 0}
    for j, video in enumerate(prefetch(dataset, pin_memory=device.type == 'cuda')):
        masks = {}
        for way in (WAYS if j % 2 == 0 else WAYS[::-1]):
            config = InferenceConfig(top_k=top_k, mem_every=mem_every, amp=way == 'amp')
            m, n, secs, _ = video_runner.segment_video(nets[way], video, config, device=device)
            stats[way]['frames'] += n
            stats[way]['seconds'] += secs
            masks[way] = m
            for i, mask in m.items():
                write_mask(os.path.join(out, way, video.name, video.frames[i] + '.png'), mask,
                           video.palette)
        for i in masks['fp32']:
            a, b = masks['fp32'][i], masks['amp'][i]
            agree['pixels'] += a.size
            for k, v in where_differ(a, b).items():
                agree[k] += v
    return stats, agree


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    native = precision.cpu_native_bf16
    if precision.amp_dtype(device) is None:
        if not args.cpu_bf16:
            raise UserError(f'--amp runs in fp32 on this {device.type} (no native bf16); use '
                            '--cpu_bf16 to check the bf16 numerics')
        if args.processes:
            raise UserError('--processes times eval_davis.py --amp as it runs: not with '
                            '--cpu_bf16')
        precision.cpu_native_bf16 = lambda: True       # bf16 autocast on this CPU anyway
    try:
        return measure(args, device)
    finally:
        precision.cpu_native_bf16 = native


def measure(args, device):
    dtype = precision.amp_dtype(device)
    nets = {way: video_runner.load_model(args.model, device, amp=way == 'amp')
            for way in WAYS}      # as the eval scripts load it with and without --amp
    dataset = DAVISTestDataset(args.davis_path, 2017, args.split)
    if args.videos:
        dataset.videos = dataset.videos[:args.videos]
    print(f'device: {describe_device(device)}; AMP dtype {str(dtype).replace("torch.", "")}; '
          f'{len(dataset.videos)} DAVIS 2017 {args.split} videos; {load_note()}', flush=True)
    with tempfile.TemporaryDirectory(prefix='bench_amp_') as out:
        stats, agree = segment_all(nets, dataset, out, device, args.top, args.mem_every)
        imageset = os.path.join(out, 'videos.txt')
        with open(imageset, 'w') as f:
            f.write('\n'.join(dataset.videos) + '\n')
        for way in WAYS:
            res = evaluate(dataset.root, os.path.join(out, way), imageset=imageset,
                           split=args.split, progress=False, verbose=False)
            stats[way].update({k: res[k] for k in ('J&F-Mean', 'J-Mean', 'F-Mean')})
            stats[way]['fps'] = stats[way]['frames'] / stats[way]['seconds']
    f, a = stats['fp32'], stats['amp']
    results = {'device': describe_device(device), 'amp_dtype': str(dtype), 'args': vars(args),
               'ways': stats, 'speedup': a['fps'] / f['fps'],
               'jf_diff': a['J&F-Mean'] - f['J&F-Mean'],
               'pixels_differ': agree['differ'] / max(agree['pixels'], 1), 'agreement': agree,
               'load': load_note()}
    if args.processes:
        results['processes'] = time_processes(args, device)
    print(f'\n{"way":<6}{"frames":>8}{"proc s":>10}{"FPS":>9}{"J&F":>8}{"J":>8}{"F":>8}')
    for way in WAYS:
        s = stats[way]
        print(f'{way:<6}{s["frames"]:>8}{s["seconds"]:>10.2f}{s["fps"]:>9.3f}'
              f'{s["J&F-Mean"]:>8.4f}{s["J-Mean"]:>8.4f}{s["F-Mean"]:>8.4f}')
    print(f'amp/fp32 speed x{results["speedup"]:.2f}; J&F difference {results["jf_diff"]:+.4f}; '
          f'masks differ on {100 * results["pixels_differ"]:.3f} % of the pixels '
          f'({load_note()})')
    n = max(agree['differ'], 1)
    print(f'of the differing pixels: {100 * agree["at_edge"] / n:.1f} % within {EDGE_PX} px of '
          f'an object edge, {100 * agree["whole_pixels"] / n:.1f} % in the '
          f'{agree["objects_whole"]} of {agree["objects"]} object-frames the ways disagree on '
          f'as a whole (IoU < 0.5)')
    if args.processes:
        p = results['processes']
        for way in WAYS:
            print(f'eval_davis.py {"--amp" if way == "amp" else "(fp32)":<7} whole process: '
                  f'best {min(p[way]):.2f} s, median {median(p[way]):.2f} s of {len(p[way])}')
        print(f'whole process amp/fp32 time: {p["ratio"]:.3f} (best of each), '
              f'{p["ratio_median"]:.3f} (medians)')
    if args.json:
        write_json(args.json, results)
    return 0


def time_processes(args, device):
    """Wall seconds of whole `eval_davis.py` runs, fp32 and --amp alternating, n of each."""
    cmd = [sys.executable, os.path.join(ROOT, 'eval_davis.py'), '--model', args.model,
           '--davis_path', args.davis_path, '--split', args.split, '--top', str(args.top),
           '--mem_every', str(args.mem_every), '--device', str(device)]
    env = dict(os.environ)
    if args.threads:
        env['OMP_NUM_THREADS'] = str(args.threads)
    times = {w: [] for w in WAYS}
    with tempfile.TemporaryDirectory(prefix='bench_amp_proc_') as out:
        for i in range(args.processes):
            for way in (WAYS if i % 2 == 0 else WAYS[::-1]):
                run = cmd + ['--output', os.path.join(out, f'{way}{i}')] + \
                    (['--amp'] if way == 'amp' else [])
                start = time.perf_counter()
                res = subprocess.run(run, env=env, capture_output=True, text=True)
                times[way].append(time.perf_counter() - start)
                if res.returncode != 0:
                    raise UserError(f'eval_davis.py failed ({res.returncode}): '
                                    + (res.stderr.strip().splitlines() or [''])[-1])
                print(f'process {i + 1}/{args.processes} {way}: {times[way][-1]:.2f} s',
                      flush=True)
    times['ratio'] = min(times['amp']) / min(times['fp32'])
    times['ratio_median'] = median(times['amp']) / median(times['fp32'])
    return times


if __name__ == '__main__':
    run_main(main)
