"""The timed propagations of scripts.bench.infer: InferenceCore and the reference loop taking turns
frame by frame on one synthetic video, with per-part timers, peak memory and mask agreement."""
import threading
import time

import numpy as np
import torch

from dataset.range_transform import im_normalization
from inference_core import InferenceConfig, InferenceCore, sync
from scripts.bench.baseline import BaselineCore
from scripts.bench.common import PARTS, PartTimer, median
from util.metrics import evaluate_sequence
from scripts.data.synthetic_video import make_video
from video_runner import label_tensor


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


