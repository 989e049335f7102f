"""Long videos: memory and time per frame with and without --max_mem_frames, and its J&F cost.

    python -m scripts.bench.long_video [--frames 300 --height 64 --width 112 --mem_every 1
        --bound 10] [--model PATH | --demo_out DIR | --train_iters 60] [--val 12:5 40:1]
        [--jf_bounds 5 10 20] [--out bench_out/long_video] [--device cpu] [--threads N]

1. Curve. One synthetic video of --frames frames (scripts.data.synthetic_video, two objects, frame 0
   labeled) segmented twice in this process, bounded (--bound N) then unbounded, with the
   schedule of the DAVIS eval script (a frame enters memory when index % mem_every == 0).
   Recorded when each frame starts: the memory bank's tensor bytes (keys and values of the
   frames read, and the storage allocated), the process's resident set (VmRSS); then the
   seconds each frame took (key, readout, decoding, value encoding) and each way's peak RSS
   (VmHWM, reset between the ways where Linux allows it; scripts/bench/common.PeakMemory).
2. J&F. The validation videos of the demo (scripts/demo.sh: scripts.data.synthetic, DAVIS layout, 10
   videos of which the last 4 are val, 96x160, 2 objects, seed 0) written with F frames and
   segmented by `eval_davis.py --evaluate --mem_every M` for each F:M of --val (12:5 = the
   demo's own videos and evaluation), unbounded and with --max_mem_frames N for each of
   --jf_bounds. A bound changes nothing until a video has more than N memory frames besides
   its label (more than M * N frames).
   The model: --model, or the newest phase2 / phase1 / s0 checkpoint of a demo output folder
   (--demo_out), or else stage 0 trained here with the demo's own commands (--train_iters
   iterations; a seeded untrained network cannot tell the objects apart, so its J&F says
   nothing).
Writes <out>/long_video.json and <out>/long_video.png (bank bytes, RSS and seconds against the
frame index, both ways).
"""
import argparse
import csv
import glob
import os
import re
import subprocess
import sys
import time

import numpy as np
import torch

from dataset.range_transform import im_normalization
from inference_core import InferenceConfig, InferenceCore
from scripts.bench.common import PeakMemory, describe_device, load_note, write_json
from util.device import pick_device
from util.errors import UserError, run_main
from scripts.data.synthetic_video import make_video
from video_runner import label_tensor, load_model

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEMO_DATA = dict(videos=10, val_videos=4, height=96, width=160, objects=2, seed=0)


def parse_args(argv):
    p = argparse.ArgumentParser(description='Memory, seconds per frame and J&F of '
                                            '--max_mem_frames on long videos.')
    p.add_argument('--frames', type=int, default=300, help='frames of the long video')
    p.add_argument('--height', type=int, default=64)
    p.add_argument('--width', type=int, default=112)
    p.add_argument('--objects', type=int, default=2)
    p.add_argument('--mem_every', type=int, default=1, help='memory schedule of the curve')
    p.add_argument('--bound', type=int, default=10, help='--max_mem_frames of the curve')
    p.add_argument('--model', default=None, help='trained weights')
    p.add_argument('--demo_out', default=None,
                   help='a scripts/demo.sh output folder: its newest phase2, phase1 or s0 '
                        'checkpoint is the model')
    p.add_argument('--train_iters', type=int, default=60,
                   help='without --model / --demo_out: stage-0 iterations trained here')
    p.add_argument('--val', type=val_arg, nargs='+', default=[(12, 5), (40, 1)],
                   metavar='F:M', help='J&F on the demo validation videos at F frames with '
                                       'eval_davis.py --mem_every M (12:5: the demo\'s)')
    p.add_argument('--jf_bounds', type=int, nargs='+', default=[5, 10, 20])
    p.add_argument('--skip_jf', action='store_true', help='the curve only')
    p.add_argument('--skip_curve', action='store_true', help='J&F only')
    p.add_argument('--out', default='bench_out/long_video')
    p.add_argument('--device', default=None, help='cpu, cuda, cuda:N (default: CUDA if present)')
    p.add_argument('--threads', type=int, default=None, help='torch CPU threads')
    p.add_argument('--debug', action='store_true', help='full tracebacks on errors')
    return p.parse_args(argv)


def val_arg(text):
    f, _, m = text.partition(':')
    if not (f.isdigit() and m.isdigit()) or int(f) < 2 or int(m) < 1:
        raise argparse.ArgumentTypeError(f'{text!r}: expected FRAMES:MEM_EVERY, e.g. 40:1')
    return int(f), int(m)


# ---------------------------------------------------------------------- the model

def newest(pattern):
    """The newest student weights matching `pattern` (teacher copies left out), or None."""
    found = sorted((p for p in glob.glob(pattern) if not p.endswith('_tea.pth')),
                   key=os.path.getmtime)
    return found[-1] if found else None


def demo_checkpoint(demo_out):
    """The newest checkpoint of the last stage a demo output folder reached."""
    for name in ('phase2', 'phase1', 's0'):
        path = newest(os.path.join(demo_out, 'saves', f'*_{name}', f'*_{name}_[0-9]*.pth'))
        if path:
            return path, name
    raise UserError(f'{demo_out}: no demo checkpoint under saves/ (run scripts/demo.sh)')


def command(args, log):
    """Run a project command with this process's torch thread count."""
    print('+ ' + ' '.join(args), flush=True)
    env = dict(os.environ, OMP_NUM_THREADS=str(torch.get_num_threads()))
    r = subprocess.run([sys.executable] + args, cwd=ROOT, capture_output=True, text=True,
                       env=env)
    log.append({'command': args, 'returncode': r.returncode})
    if r.returncode:
        raise UserError(f'{args[0]} failed (exit {r.returncode}): {r.stderr.strip()[-500:]}')
    return r.stdout


def train_stage0(work, iters, device, log):
    """Stage 0 as scripts/demo.sh trains it (its data, init and flags), `iters` iterations."""
    data = os.path.join(work, 'train_data')
    command(['-m', 'scripts.data.synthetic', '--out', data, '--layout', 'youtube', '--videos', '6',
             '--val_videos', '2', '--frames', '12', '--height', '96', '--width', '160',
             '--objects', '2', '--seed', '1'], log)
    command(['-m', 'scripts.data.synthetic', '--out', data, '--layout', 'static', '--videos', '40',
             '--height', '96', '--width', '160', '--seed', '2'], log)
    init = os.path.join(work, 'init.pth')
    command(['-m', 'model.init_weights', '--out', init, '--seed', '0', '--calibrate_bn',
             os.path.join(data, 'YouTube', 'train_480p', 'JPEGImages'),
             '--calibrate_frames', '32'], log)
    dev = ['--device', str(device)] if device is not None else []
    command(['train.py', '--id', 's0', '--stage', '0', '--static_root',
             os.path.join(data, 'static'), '--load_network', init, '--lr', '1e-4', '-b', '4',
             '--crop_size', '64', '--num_workers', '1', '--save_root',
             os.path.join(work, 'saves'), '--log_every', '10', '--save_every', '100000',
             '-i', str(iters), '--steps', str(iters * 4 // 5), '--bce_start_warm', '0',
             '--bce_end_warm', str(iters // 5 + 1)] + dev, log)
    return newest(os.path.join(work, 'saves', '*_s0', f'*_s0_{iters}.pth'))


def pick_model(a, log):
    if a.model:
        return a.model, 'given (--model)'
    if a.demo_out:
        path, stage = demo_checkpoint(a.demo_out)
        return path, f'{stage} of {a.demo_out}'
    path = train_stage0(a.out, a.train_iters, a.device, log)
    return path, f'stage 0 trained here, {a.train_iters} iterations (demo commands)'


# ---------------------------------------------------------------------- 1. the curve

def vm_rss_mb():
    with open('/proc/self/status') as f:
        m = re.search(r'^VmRSS:\s+(\d+) kB', f.read(), re.M)
    return int(m.group(1)) / 1024 if m else float('nan')


class Probe(InferenceCore):
    """InferenceCore noting, when each frame's key is encoded: the time, the memory bank's
    bytes (read and allocated) and the resident set."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.marks = []            # (frame, perf_counter, bank bytes, allocated bytes, RSS MB)

    def _encode_key(self, ti):
        used, alloc = 0, 0
        if self.mem is not None:
            keys, rows = self.mem.used()
            used = keys.nbytes + rows.nbytes
            alloc = self.mem.keys.nbytes + self.mem.rows.nbytes
        self.marks.append((ti, time.perf_counter(), used, alloc, vm_rss_mb()))
        return super()._encode_key(ti)


def long_video(n, height, width, objects, seed=0):
    """Normalised frames [1, T, 3, H, W] and frame 0's index mask."""
    imgs, masks = make_video(np.random.default_rng(seed), n, height, width, objects)
    frames = torch.stack([im_normalization(torch.from_numpy(f).permute(2, 0, 1).float() / 255)
                          for f in imgs])
    return frames[None], masks[0]


def curve(net, images, mask, objects, device, mem_every, bound):
    """One way: per frame (from 1) its bank bytes, allocated bytes, RSS and seconds."""
    peak = PeakMemory(device)
    peak.reset()
    core = Probe(net, images, objects, InferenceConfig(mem_every=mem_every, max_mem_frames=bound),
                 device=device)
    start = time.perf_counter()
    core.interact(label_tensor(mask, objects), 0, images.shape[1])
    end = time.perf_counter()
    marks = core.marks
    stamps = [m[1] for m in marks] + [end]
    per = [{'frame': m[0], 'bank_bytes': m[2], 'bank_alloc_bytes': m[3], 'rss_mb': m[4],
            'seconds': stamps[i + 1] - m[1]} for i, m in enumerate(marks)][1:]
    return {'max_mem_frames': bound, 'seconds': end - start, 'peak_mb': peak.peak_mb(),
            'peak_kind': peak.kind, 'memory_frames_at_end': len(core.mem_frames),
            'per_frame': per}


def summary_rows(ways, at):
    rows = []
    for i in at:
        row = {'frame': i}
        for name, w in ways.items():
            frames = w['per_frame']
            j = min(range(len(frames)), key=lambda k: abs(frames[k]['frame'] - i))
            near = frames[max(0, j - 4):j + 5]          # seconds: median of 9 frames around
            row[name] = {'bank_mb': frames[j]['bank_bytes'] / 2 ** 20,
                         'rss_mb': frames[j]['rss_mb'],
                         's_per_frame': float(np.median([f['seconds'] for f in near]))}
        rows.append(row)
    return rows


def plot(ways, path, title):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for name, w in ways.items():
        f = w['per_frame']
        x = [r['frame'] for r in f]
        axes[0].plot(x, [r['bank_bytes'] / 2 ** 20 for r in f], label=name)
        axes[1].plot(x, [r['rss_mb'] for r in f], label=name)
        sec = [r['seconds'] for r in f]
        axes[2].plot(x, [np.median(sec[max(0, i - 4):i + 5]) for i in range(len(sec))],
                     label=name)
    for ax, label in zip(axes, ['memory bank tensors (MiB)', 'process RSS (MiB)',
                                'seconds per frame (9-frame median)']):
        ax.set_xlabel('frame index')
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=72)
    plt.close(fig)
    print(f'plot written to {path}')


# ---------------------------------------------------------------------- 2. J&F

def jf(work, model, frames, mem_every, bounds, device, log):
    """{'unbounded' or N: {'J&F', 'J', 'F', 'fps', 'peak_mib'}} on the demo's val videos
    at `frames` frames, eval_davis.py --mem_every `mem_every`."""
    data = os.path.join(work, f'val_{frames}')
    if not os.path.isdir(os.path.join(data, 'DAVIS')):
        command(['-m', 'scripts.data.synthetic', '--out', data, '--layout', 'davis', '--frames',
                 str(frames)] + [f'--{k}={v}' for k, v in DEMO_DATA.items()], log)
    out = {}
    for n in [None] + list(bounds):
        name = 'unbounded' if n is None else n
        pred = os.path.join(work, f'pred_{frames}_{mem_every}_{name}')
        flags = ['eval_davis.py', '--model', model, '--davis_path', os.path.join(data, 'DAVIS'),
                 '--split', 'val', '--output', pred, '--evaluate', '--mem_every',
                 str(mem_every)]
        flags += [] if n is None else ['--max_mem_frames', str(n)]
        flags += [] if device is None else ['--device', str(device)]
        printed = command(flags, log)
        with open(os.path.join(pred, 'global_results-val.csv')) as f:
            row = next(csv.DictReader(f))
        m = re.search(r'([\d.]+) FPS .*; peak memory ([\d.]+) MiB', printed)
        out[str(name)] = {'J&F': float(row['J&F-Mean']), 'J': float(row['J-Mean']),
                          'F': float(row['F-Mean']), 'fps': float(m.group(1)),
                          'peak_mib': float(m.group(2))}
        print(f'  val {frames} frames, mem_every {mem_every}, max_mem_frames {name}: J&F '
              f'{out[str(name)]["J&F"]:.4f}', flush=True)
    return out


# ---------------------------------------------------------------------- main

def main(argv=None):
    a = parse_args(argv)
    if a.bound < 1 or any(n < 1 for n in a.jf_bounds):
        raise UserError('--bound and --jf_bounds must be >= 1')
    if a.threads:
        torch.set_num_threads(a.threads)
    os.makedirs(a.out, exist_ok=True)
    device = pick_device(a.device)
    log = []
    model, origin = pick_model(a, log)
    print(f'model: {model} ({origin})')
    result = {'date': time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()),
              'machine': describe_device(device), 'load': load_note(), 'model': model,
              'model_origin': origin, 'commands': log}
    if not a.skip_curve:
        result.update(run_curve(a, model, device))
    if not a.skip_jf:
        result['jf'] = {}
        for n, m in a.val:
            result['jf'][f'{n}:{m}'] = jf(a.out, model, n, m, a.jf_bounds, a.device, log)
            write_json(os.path.join(a.out, 'long_video.json'), result)
        print(f'\nJ&F\n{"frames:mem_every":>16}' + ''.join(
            f'{k:>11}' for k in ['unbounded'] + [f'N={n}' for n in a.jf_bounds]))
        for n, res in result['jf'].items():
            print(f'{n:>16}' + ''.join(f'{res[k]["J&F"]:>11.4f}' for k in res))
    write_json(os.path.join(a.out, 'long_video.json'), result)
    return result


def run_curve(a, model, device):
    """Both ways on the long video: the curve's results, the plot written."""
    net = load_model(model, device)
    images, mask = long_video(a.frames, a.height, a.width, a.objects)
    print(f'curve: {a.frames} frames {a.height}x{a.width}, {a.objects} objects, mem_every '
          f'{a.mem_every}; {describe_device(device)}; {load_note()}', flush=True)
    ways = {}
    for name, bound in ((f'max_mem_frames {a.bound}', a.bound), ('unbounded', None)):
        ways[name] = curve(net, images, mask, a.objects, device, a.mem_every, bound)
        w = ways[name]
        print(f'{name}: {w["seconds"]:.1f} s, {w["memory_frames_at_end"]} memory frames at the '
              f'end, peak {w["peak_mb"]:.0f} MB ({w["peak_kind"]})', flush=True)
    at = sorted({1, a.frames // 4, a.frames // 2, 3 * a.frames // 4, a.frames - 1})
    rows = summary_rows(ways, at)
    print(f'{"frame":>6}' + ''.join(f'{n + ": bank MiB / RSS MiB / s per frame":>52}'
                                    for n in ways))
    for r in rows:
        print(f'{r["frame"]:>6}' + ''.join(
            f'{r[n]["bank_mb"]:>26.2f}{r[n]["rss_mb"]:>13.0f}{r[n]["s_per_frame"]:>13.3f}'
            for n in ways))
    title = (f'{a.frames} frames {a.height}x{a.width}, {a.objects} objects, mem_every '
             f'{a.mem_every}; {describe_device(device)}; {load_note()}')
    plot(ways, os.path.join(a.out, 'long_video.png'), title)
    return {'frames': a.frames, 'size': [a.height, a.width], 'objects': a.objects,
            'mem_every': a.mem_every, 'curve': ways, 'summary': rows}


if __name__ == '__main__':
    run_main(main)
