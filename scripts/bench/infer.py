"""Inference benchmark: InferenceCore against the reference loop (scripts/bench/baseline.py).

    python -m scripts.bench.infer [--height 480 --width 854 --frames 10 --objects 1 2 3
        --mem_every 5 --repeats 1 --device cpu --threads N --sweep 1 4 8 16 --ablate
        --json OUT]

For every object count K: one synthetic video (scripts.data.synthetic_data.make_video, seeded), labeled on
frame 0, propagated to the end by InferenceCore ("ours") and by BaselineCore ("base"), both
with the same seeded random-weight eval STCN (or --model weights), in one process. The two
run in turns, frame by frame (two threads, one working at a time), so that both see the
same machine load; --sequential runs them one after the other instead. Reported per K:
  FPS        frames segmented (the labeled one included) / seconds of processing (the video
             is in memory: IO excluded, as STCN reports it); best of --repeats
  parts      seconds per frame in key encoding, memory readout, decoding, value encoding
             (+ memory write); 'other' = aggregation, padding, bookkeeping
  peak mem   CPU peak RSS or CUDA max allocated, and its rise during the run, measured on a
             lone 2-frame run after the warm-up (label with its value encoding, then one
             segmented frame: key, readout, decode)
  per frame  readout + decode seconds by the number of frames in memory (median)
  masks      whether every frame's mask (argmax) equals the baseline's; where not, how many
             pixels differ and how close to a tie the baseline was there; max |prob diff|
--sweep times the readout alone (affinity, top-k, weighted values) for memory sizes of
that many frames at this resolution. --ablate times each optimisation alone.
"""
import argparse
import copy
import os
import threading
import time

import numpy as np
import torch
import torch.nn.functional as F

from dataset.range_transform import im_normalization
from inference_core import InferenceConfig, InferenceCore, MemoryBank, sync
from model.precision import amp_note
from model.eval_network import STCN
from model.memory import get_affinity, softmax_topk, topk_readout
from scripts.bench.baseline import BaselineCore
from scripts.bench.common import (PARTS, PartTimer, PeakMemory, describe_device,
                                  load_note, median, write_json)
from util.device import pick_device
from util.errors import UserError, run_main
from util.metrics import evaluate_sequence
from scripts.data.synthetic_data import make_video
from video_runner import label_tensor


def parse_args(argv):
    p = argparse.ArgumentParser(description='Time InferenceCore against the reference loop.')
    p.add_argument('--height', type=int, default=480)
    p.add_argument('--width', type=int, default=854)
    p.add_argument('--frames', type=int, default=10, help='frames per video (>= 2)')
    p.add_argument('--objects', type=int, nargs='+', default=[1, 2, 3],
                   help='object counts; one video each')
    p.add_argument('--mem_every', type=int, default=5)
    p.add_argument('--mem_style', default='davis', choices=['davis', 'youtube'])
    p.add_argument('--include_last', action='store_true')
    p.add_argument('--top_k', type=int, default=20)
    p.add_argument('--exact_readout', action='store_true',
                   help='InferenceCore with the dense reference readout (bitwise the baseline '
                        'in fp32 on CPU; slower readout)')
    p.add_argument('--amp', action='store_true',
                   help='InferenceCore with --amp (CUDA; a CPU with native bf16); the '
                        'baseline stays fp32')
    p.add_argument('--repeats', type=int, default=1, help='timed runs per implementation')
    p.add_argument('--device', default=None, help='cpu, cuda, cuda:N (default: CUDA if present)')
    p.add_argument('--threads', type=int, default=None, help='torch CPU threads')
    p.add_argument('--model', default=None, help='weights to load (default: seeded random)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--mask_gain', type=float, default=1.0,
                   help='scale the mask input channels of the value encoder (random weights '
                        'only): a random network cannot tell objects apart, so most pixels '
                        'are near-ties between objects; e.g. 100 makes it decide like a '
                        'trained one (same compute)')
    p.add_argument('--no_baseline', action='store_true', help='time InferenceCore only')
    p.add_argument('--sequential', action='store_true',
                   help='run the implementations one after the other (default: in turns, '
                        'frame by frame, so both see the same machine load)')
    p.add_argument('--sweep', type=int, nargs='*', default=[1, 4, 8, 16],
                   help='memory sizes (frames) for the readout-only sweep; none to skip')
    p.add_argument('--ablate', action='store_true',
                   help='time each optimisation alone on this resolution')
    p.add_argument('--json', default=None, help='also write the results to this JSON file')
    p.add_argument('--debug', action='store_true', help='full tracebacks on errors')
    args = p.parse_args(argv)
    if args.frames < 2:
        p.error('--frames must be >= 2')
    if args.height < 16 or args.width < 16:
        p.error('--height and --width must be >= 16')
    if any(k < 1 for k in args.objects):
        p.error('--objects must be >= 1')
    if args.repeats < 1 or args.mem_every < 1 or args.top_k < 1:
        p.error('--repeats, --mem_every and --top_k must be >= 1')
    return args


# ----------------------------------------------------------------------------- timed cores

class Turns:
    """Runners (threads) take turns frame by frame, so that both implementations see the same
    machine load; a runner's clock stops while it waits for its turn."""

    def __init__(self, names):
        self.cond = threading.Condition()
        self.names, self.turn, self.done = list(names), names[0], set()

    def wait(self, name):
        with self.cond:
            self.cond.wait_for(lambda: self.turn == name)

    def give(self, name, finished=False):
        with self.cond:
            if finished:
                self.done.add(name)
            rest = [n for n in self.names if n not in self.done]
            if rest:
                i = self.names.index(name)
                order = self.names[i + 1:] + self.names[:i + 1]
                self.turn = next(n for n in order if n in rest)
            self.cond.notify_all()


class Clock:
    """Seconds of processing of one runner: running only during its turns."""

    def __init__(self, device, turns=None, name=None):
        self.device, self.turns, self.name = device, turns, name
        self.seconds, self.start, self.frames = 0.0, None, 0

    def begin(self):
        if self.turns is not None:
            self.turns.wait(self.name)
        sync(self.device)
        self.start = time.perf_counter()

    def end(self, finished=False):
        sync(self.device)
        self.seconds += time.perf_counter() - self.start
        if self.turns is not None:
            self.turns.give(self.name, finished)

    def next_frame(self):
        """Called as each frame starts: after the first, hand over the turn and wait."""
        self.frames += 1
        if self.frames > 1 and self.turns is not None:
            self.end()
            self.begin()


class TimedCore(InferenceCore):
    """InferenceCore with per-part timers and a per-frame (memory size, seconds) log."""

    def __init__(self, *a, timer, clock, **kw):
        super().__init__(*a, **kw)
        self.timer, self.clock, self.frame_log = timer, clock, []

    def _encode_key(self, ti):
        self.clock.next_frame()
        with self.timer('key'):
            return super()._encode_key(ti)

    def _read_memory(self, k16):
        with self.timer('readout'):
            return super()._read_memory(k16)

    def _decode(self, mem, feats, objs):
        with self.timer('decode'):
            return super()._decode(mem, feats, objs)

    def _add_memory(self, ti, feats, prob, temp=False):
        with self.timer('value'):
            return super()._add_memory(ti, feats, prob, temp)

    def _segment(self, feats):
        sync(self.device)
        start = time.perf_counter()
        out = super()._segment(feats)
        sync(self.device)
        self.frame_log.append((len(self.mem), time.perf_counter() - start))
        return out


class TimedBaseline(BaselineCore):
    def __init__(self, *a, clock, **kw):
        super().__init__(*a, **kw)
        self.clock, self.frame_log = clock, []

    def encode_key(self, ti):
        self.clock.next_frame()
        return super().encode_key(ti)

    def segment(self, feats):
        sync(self.device)
        start = time.perf_counter()
        out = super().segment(feats)
        sync(self.device)
        self.frame_log.append((self.memory_entries(), time.perf_counter() - start))
        return out


# ----------------------------------------------------------------------------- runs

def make_inputs(k, args):
    """(images [1, T, 3, H, W] normalised, the T ground-truth masks uint8 [H, W])."""
    rng = np.random.default_rng(args.seed * 1000 + k)
    frames, masks = make_video(rng, args.frames, args.height, args.width, k)
    x = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float().div_(255)
    # contiguous [T, 3, H, W] like dataset.eval_dataset.load_frames (not channels-last strides)
    return im_normalization(x.contiguous())[None], masks


def j_and_f(core, gt_masks):
    """J&F-Mean of the core's masks against the synthetic ground truth (util.metrics)."""
    if len(gt_masks) < 3:
        return float('nan')
    pred = [core.get_mask(t) for t in range(len(gt_masks))]
    J, F = evaluate_sequence(gt_masks, pred)
    return float((np.nanmean(J.mean(1)) + np.nanmean(F.mean(1))) / 2)


def make_core(which, net, images, k, args, device, clock, frames=None):
    timer = PartTimer(device)
    kw = dict(top_k=args.top_k, mem_every=args.mem_every if frames is None else 1,
              include_last=args.include_last, mem_style=args.mem_style, device=device)
    if which == 'ours':
        config = InferenceConfig(amp=args.amp, exact_readout=args.exact_readout,
                                 **{n: v for n, v in kw.items() if n != 'device'})
        return TimedCore(net, images, k, config, device=device, clock=clock, timer=timer), timer
    return TimedBaseline(net, images, k, clock=clock, timer=timer, **kw), timer


def result(core, timer, clock, peak=None):
    return {'seconds': clock.seconds, 'parts': dict(timer.seconds), 'frames': core.processed,
            'peak_mb': peak.peak_mb() if peak is not None else None,
            'rise_mb': peak.above_start_mb() if peak is not None else None,
            'log': core.frame_log}


def run_alone(which, net, images, mask, k, args, device, peak=None, frames=None):
    """One propagation on its own (warm-up and peak memory) -> (result, core)."""
    t = images.shape[1] if frames is None else frames
    clock = Clock(device)
    core, timer = make_core(which, net, images[:, :t], k, args, device, clock, frames)
    label = label_tensor(mask, k)
    if peak is not None:
        peak.reset()
    clock.begin()
    core.interact(label, 0, t)
    clock.end()
    return result(core, timer, clock, peak), core


def run_turns(impls, images, mask, k, args, device):
    """Every implementation propagates the video in its own thread, taking turns frame by
    frame (see Turns) -> {which: (result, core)}."""
    t = images.shape[1]
    turns = Turns([w for w, _ in impls])
    out, errors = {}, []

    def runner(which, net):
        clock = Clock(device, turns, which)
        try:
            core, timer = make_core(which, net, images, k, args, device, clock)
            label = label_tensor(mask, k)
            clock.begin()
            try:
                core.interact(label, 0, t)
            finally:
                clock.end(finished=True)
            out[which] = (result(core, timer, clock), core)
        except BaseException as e:      # re-raised in the main thread
            errors.append(e)
            turns.give(which, finished=True)
    threads = [threading.Thread(target=runner, args=(w, n)) for w, n in impls]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    if errors:
        raise errors[0]
    return out


def compare_masks(ours, base, t):
    """Masks (argmax) of every frame, ours against the baseline's.

    -> dict(identical, differing_pixels, pixels, max_margin_of_differing (the largest gap
    between the baseline's top two class probabilities at a pixel that differs: a near-tie
    when tiny), max_prob_diff).
    """
    diff, n_diff, n_pix, margin = 0.0, 0, 0, 0.0
    for ti in range(t):
        po, pb = ours.get_prob(ti).cpu(), base.get_prob(ti).cpu()
        diff = max(diff, float((po - pb).abs().max()))
        changed = po.argmax(0) != pb.argmax(0)
        n_diff += int(changed.sum())
        n_pix += changed.numel()
        if bool(changed.any()) and pb.shape[0] > 1:
            top2 = pb.topk(2, dim=0).values
            margin = max(margin, float((top2[0] - top2[1])[changed].max()))
    return {'identical': n_diff == 0, 'differing_pixels': n_diff, 'pixels': n_pix,
            'max_margin_of_differing': margin, 'max_prob_diff': diff}


def summarise(runs, mem_run):
    """Best (min) of the repeats: seconds, per-frame parts; peak memory of the lone run;
    median per-frame readout + decode seconds by memory size over all repeats."""
    best = min(runs, key=lambda r: r['seconds'])
    secs, frames = best['seconds'], best['frames']
    parts = {p: best['parts'][p] / frames for p in PARTS}
    parts['other'] = max(0.0, secs / frames - sum(parts.values()))
    by_mem = {}
    for r in runs:
        for n, s in r['log']:
            by_mem.setdefault(n, []).append(s)
    return {'seconds': secs, 'frames': frames, 'fps': frames / secs,
            'per_frame_s': secs / frames, 'parts_per_frame_s': parts,
            'seconds_all_repeats': [r['seconds'] for r in runs],
            'peak_mb': mem_run['peak_mb'], 'rise_mb': mem_run['rise_mb'],
            'segment_s_by_memory_frames': {n: median(v) for n, v in sorted(by_mem.items())}}


def bench_video(k, net, base_net, args, device, peak):
    images, gt = make_inputs(k, args)
    mask = gt[0]
    impls = [('ours', net)] + ([] if args.no_baseline else [('base', base_net)])
    for which, n in impls:             # warm-up: kernels and primitive caches for these shapes
        run_alone(which, n, images, mask, k, args, device, frames=min(3, args.frames))
    mem_runs = {}
    for which, n in impls[::-1]:       # peak memory: label + one segmented frame, each alone
        mem_runs[which], _ = run_alone(which, n, images, mask, k, args, device, peak, frames=2)
    runs = {which: [] for which, _ in impls}
    last = {}
    for r in range(args.repeats):
        order = impls if r % 2 == 0 else impls[::-1]           # alternate who goes first
        if args.sequential:
            res = {w: run_alone(w, n, images, mask, k, args, device) for w, n in order}
        else:
            res = run_turns(order, images, mask, k, args, device)
        for which, (rr, core) in res.items():
            runs[which].append(rr)
            last[which] = core
    out = {which: summarise(v, mem_runs[which]) for which, v in runs.items()}
    for which in out:
        out[which]['j_and_f'] = j_and_f(last[which], gt)
    if 'base' in out:
        cmp = compare_masks(last['ours'], last['base'], args.frames)
        out['masks'] = cmp
        out['masks_identical'] = cmp['identical']
        out['max_prob_diff'] = cmp['max_prob_diff']
        out['speedup'] = out['base']['seconds'] / out['ours']['seconds']
    return out


# ----------------------------------------------------------------------------- sweeps

def compare(a, b, repeats, device):
    """Min seconds of a() and of b(), each run once untimed, then alternating a, b, a, b."""
    best = [float('inf'), float('inf')]
    for fn in (a, b):
        fn()
    for _ in range(repeats):
        for i, fn in enumerate((a, b)):
            sync(device)
            start = time.perf_counter()
            fn()
            sync(device)
            best[i] = min(best[i], time.perf_counter() - start)
    return best


def readout_sweep(args, device):
    """Readout alone (affinity + top-k + weighted values) for growing memory, per K."""
    h, w = -(-args.height // 16), -(-args.width // 16)
    hw = h * w
    g = torch.Generator().manual_seed(args.seed)
    res = []
    with torch.inference_mode():
        for k in args.objects:
            for frames in args.sweep:
                n = frames * hw
                mk = torch.randn(1, 64, n, generator=g).to(device)
                qk = torch.randn(1, 64, hw, generator=g).to(device)
                rows = torch.randn(n, k * 512, generator=g).to(device)
                mv = rows.t().reshape(k, 512, n).contiguous()

                def ours():
                    topk_readout(mk, qk, rows, args.top_k)

                def base():
                    wts = softmax_topk(get_affinity(mk, qk), args.top_k)
                    torch.cat([torch.bmm(mv[i:i + 1], wts) for i in range(k)])
                row = {'objects': k, 'memory_frames': frames}
                if args.no_baseline:
                    row['ours_s'] = compare(ours, ours, args.repeats, device)[0]
                else:
                    row['base_s'], row['ours_s'] = compare(base, ours, args.repeats, device)
                    row['speedup'] = row['base_s'] / row['ours_s']
                res.append(row)
                print('  readout K={objects} memory {memory_frames:>3} frames: ours {ours_s:.4f} s'
                      .format(**row) + (f", base {row['base_s']:.4f} s, x{row['speedup']:.2f}"
                                        if 'base_s' in row else ''), flush=True)
    return res


def ablations(net, args, device):
    """Each optimisation alone, at this resolution, on the largest K of --objects."""
    k = max(args.objects)
    hp, wp = args.height + (-args.height) % 16, args.width + (-args.width) % 16
    h, w = hp // 16, wp // 16
    g = torch.Generator().manual_seed(args.seed)
    frame = torch.randn(1, 3, hp, wp, generator=g).to(device)
    masks = (torch.rand(k, 1, hp, wp, generator=g) > 0.5).float().to(device)
    reps = max(2, args.repeats)
    res = {}

    def report(name, a, b, adopted):
        ta, tb = compare(a, b, reps, device)
        res[name] = {'before_s': ta, 'after_s': tb, 'speedup': ta / tb, 'adopted': adopted}
        print(f'  {name:<46} {ta:8.4f} s -> {tb:8.4f} s  x{ta / tb:.2f}  {adopted}', flush=True)

    with torch.inference_mode():
        _, v16, f16, f8, f4 = net.encode_key(frame)
        mem = torch.randn(k, 512, h, w, generator=g).to(device)

        def dec_ref():
            for i in range(k):
                torch.sigmoid(net.decoder(torch.cat([mem[i:i + 1], v16], 1), f8, f4))
        report(f'decode K={k}: module loop -> shared skip, in place',
               dec_ref, lambda: net.decode(mem, v16, f8, f4, per_object=True),
               'yes (bitwise equal)')
        c = net.decoder.compress
        w1m, w1q = c.conv1.weight[:, :512].contiguous(), c.conv1.weight[:, 512:].contiguous()
        wdm, wdq = c.downsample.weight[:, :512].contiguous(), c.downsample.weight[:, 512:].contiguous()

        def compress_ref():
            for i in range(k):
                c(torch.cat([mem[i:i + 1], v16], 1))

        def compress_split():       # conv(cat(a, b)) = conv_a(a) + conv_b(b): b is shared
            q1 = F.conv2d(F.relu(v16), w1q, c.conv1.bias, padding=1)
            qd = F.conv2d(v16, wdq, c.downsample.bias, padding=1)
            for i in range(k):
                m = mem[i:i + 1]
                r = F.conv2d(F.relu(m), w1m, None, padding=1).add_(q1)
                c.conv2(r.relu_()).add_(F.conv2d(m, wdm, None, padding=1).add_(qd))
        report(f'decoder compress K={k}: split off the shared query half', compress_ref,
               compress_split, 'no (not bitwise, small)')
        report(f'decode K={k}: per object -> one batch',
               lambda: net.decode(mem, v16, f8, f4, per_object=True),
               lambda: net.decode(mem, v16, f8, f4, per_object=False), 'CUDA only')
        report(f'value K={k}: per object -> one batch',
               lambda: net.encode_value(frame, f16, masks, per_object=True),
               lambda: net.encode_value(frame, f16, masks, per_object=False), 'CUDA only')

        cl = copy.deepcopy(net).to(memory_format=torch.channels_last)
        frame_cl = frame.contiguous(memory_format=torch.channels_last)
        report('key encoding: NCHW -> channels_last', lambda: net.encode_key(frame),
               lambda: cl.encode_key(frame_cl), 'no (not bitwise)')
        mem_cl = mem.contiguous(memory_format=torch.channels_last)
        _, v16c, f16c, f8c, f4c = cl.encode_key(frame_cl)
        report(f'decode K={k}: NCHW -> channels_last',
               lambda: net.decode(mem, v16, f8, f4), lambda: cl.decode(mem_cl, v16c, f8c, f4c),
               'no (not bitwise)')

        # memory: 8 permanent frames + a temporary entry, as include_last reads it each frame
        keys = [torch.randn(1, 64, h * w, generator=g).to(device) for _ in range(9)]
        vals = [torch.randn(k, 512, h * w, generator=g).to(device) for _ in range(9)]

        def grow_cat():
            mk, mv = keys[0], vals[0]
            for i in range(1, 8):
                mk, mv = torch.cat([mk, keys[i]], 2), torch.cat([mv, vals[i]], 2)
            torch.cat([mk, keys[8]], 2), torch.cat([mv, vals[8]], 2)

        def grow_bank():
            bank = MemoryBank(k, 64, 512, h * w, 4, device, torch.float32)
            for i in range(8):
                bank.add(keys[i], vals[i], i)
            bank.add(keys[8], vals[8], 8, temp=True)
            bank.used()
        report('memory: torch.cat growth -> preallocated bank', grow_cat, grow_bank, 'yes')

    def frame_fn(mode):
        def fn():
            with mode():
                _, v16_, _, f8_, f4_ = net.encode_key(frame)
                net.decode(mem[:1], v16_, f8_, f4_)
        return fn
    report('key+decode K=1: no_grad -> inference_mode', frame_fn(torch.no_grad),
           frame_fn(torch.inference_mode), 'yes')
    return res


# ----------------------------------------------------------------------------- main

def fmt_parts(parts):
    return '  '.join(f'{p} {parts[p]:.3f}' for p in PARTS + ('other',))


def main(argv):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    torch.manual_seed(args.seed)
    if args.model:
        if not os.path.isfile(args.model):
            raise UserError(f'{args.model}: no such weights file')
        from video_runner import load_model
        net = load_model(args.model, device)
    else:
        net = STCN().to(device).eval()
        with torch.no_grad():
            net.value_encoder.conv1.weight[:, 3:] *= args.mask_gain
    base_net = copy.deepcopy(net)             # the baseline's own copy, never converted
    peak = PeakMemory(device)
    print(f'device: {describe_device(device)}; {load_note()}')
    print(f'video {args.height}x{args.width}, {args.frames} frames, objects {args.objects}, '
          f'mem_every {args.mem_every} ({args.mem_style}{", include_last" if args.include_last else ""}), '
          f'top_k {args.top_k}, repeats {args.repeats}, '
          f'{"AMP (ours), fp32 (base)" if args.amp else "fp32"}, '
          f'{"exact (dense) readout, " if args.exact_readout else ""}'
          + (f'weights {args.model}' if args.model else 'seeded random weights'
             + (f' (mask channels x{args.mask_gain:g})' if args.mask_gain != 1 else '')),
          flush=True)
    note = amp_note(device, args.amp)
    if note:
        print(note)
    results = {'device': describe_device(device), 'args': vars(args), 'videos': {},
               'load_at_start': load_note()}
    tot = {'ours': [0, 0.0], 'base': [0, 0.0]}
    for k in args.objects:
        r = bench_video(k, net, base_net, args, device, peak)
        results['videos'][str(k)] = r
        for which in ('ours', 'base'):
            if which in r:
                tot[which][0] += r[which]['frames']
                tot[which][1] += r[which]['seconds']
                s = r[which]
                print(f'K={k} {which}: {s["fps"]:.3f} FPS ({s["per_frame_s"]:.3f} s/frame), '
                      f'J&F {s["j_and_f"]:.3f} (synthetic truth), '
                      f'peak {s["peak_mb"]:.0f} MB ({peak.kind}, +{s["rise_mb"]:.0f} MB '
                      f'during the run); per frame: '
                      f'{fmt_parts(s["parts_per_frame_s"])}', flush=True)
        if 'base' in r:
            m = r['masks']
            same = 'yes' if m['identical'] else (
                f'no: {m["differing_pixels"]} of {m["pixels"]} pixels differ, all near-ties '
                f'(baseline top-two probabilities within {m["max_margin_of_differing"]:.1e})')
            print(f'K={k} ours/base speed: x{r["speedup"]:.2f}; masks identical: {same}; '
                  f'max |prob diff| {m["max_prob_diff"]:.1e}', flush=True)
        grow = ', '.join(f'{n}: {s:.3f}' for n, s in
                         r['ours']['segment_s_by_memory_frames'].items())
        print(f'K={k} ours readout+decode s by memory frames {{{grow}}}', flush=True)
        if 'base' in r:
            grow = ', '.join(f'{n}: {s:.3f}' for n, s in
                             r['base']['segment_s_by_memory_frames'].items())
            print(f'K={k} base readout+decode s by memory frames {{{grow}}}', flush=True)
    ours_fps = tot['ours'][0] / tot['ours'][1]
    results['total'] = {'ours_fps': ours_fps}
    line = f'all videos: ours {ours_fps:.3f} FPS'
    if not args.no_baseline:
        base_fps = tot['base'][0] / tot['base'][1]
        same = all(v['masks_identical'] for v in results['videos'].values())
        n_diff = sum(v['masks']['differing_pixels'] for v in results['videos'].values())
        n_pix = sum(v['masks']['pixels'] for v in results['videos'].values())
        results['total'].update(base_fps=base_fps, speedup=ours_fps / base_fps,
                                masks_identical=same, differing_pixels=n_diff, pixels=n_pix)
        line += (f', base {base_fps:.3f} FPS, ours/base x{ours_fps / base_fps:.2f}; masks '
                 + ('identical on every frame' if same else
                    f'differ on {n_diff} of {n_pix} pixels ({100 * n_diff / n_pix:.4f}%)'))
    print(line, flush=True)
    results['load_after_videos'] = load_note()
    print(load_note(), flush=True)
    if args.sweep:
        print('readout alone (affinity + top-k + weighted values), min of repeats:')
        results['readout_sweep'] = readout_sweep(args, device)
    if args.ablate:
        print('ablations (before -> after: min of max(2, --repeats) alternating runs after one '
              'warm-up each; adopted?):')
        results['ablations'] = ablations(net, args, device)
    if args.json:
        write_json(args.json, results)
    return 0


if __name__ == '__main__':
    run_main(main)
