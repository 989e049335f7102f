"""Training-step benchmark: STCNModel.do_pass against the original pseudo-label behaviour.

    python -m scripts.bench.train [--batch 4 --crop 384 --iters 3 --device cuda --amp]
    python -m scripts.bench.train --batch 2 --crop 192 --iters 3 --device cpu
    python -m scripts.bench.train --versus fp32 [--device cuda]      # AMP against fp32

Defaults: batch 4, 384x384 triplets on CUDA; batch 2, 192x192 on CPU (a 384 step takes
minutes on a small CPU). One synthetic default-collated batch (two objects, random frames);
the real trainer (util.hyper_para flags, util.distributed.init_distributed, STCNModel) runs
one untimed step (it makes the EMA teacher) and then --iters timed steps, "ours"
(model.trainer.STCNModel) and "base" (scripts.bench.baseline.BaselineSTCNModel) alternating,
each its own seeded model. With --versus fp32 the two are ours in fp32 ("fp32") and ours
with mixed precision ("amp": fp16 + gradient scaler on CUDA, bf16 autocast (--cpu_bf16) on a
CPU that computes bf16 natively). Configurations:
  plain       stage 3, labeled triplets only
  semi_warm   --semi --use_teacher before --end_warm: all frames labeled, no pseudo labels
              (ours: no teacher forward; base: the unused teacher forward of the original)
  semi        --semi --use_teacher after --end_warm: frame 1 unlabeled, teacher pseudo labels
  phase2      --phase2_train 0 --phase2_start_update 0 (refresh from the student's own
              prediction: ours reuses the training forward, base runs a no-grad forward)
Reported: seconds per iteration (best of --iters; the median too), peak memory of a step (CPU peak RSS or CUDA max
allocated) and its rise over the memory in use before the step, ours/base ratios.
"""
import argparse
import time

import torch

from dataset.data_mode import data_mode
from inference_core import sync
from model.trainer import STCNModel, training_amp
from scripts.bench.baseline import BaselineSTCNModel
from scripts.bench.common import (PeakMemory, describe_device, load_note, median,
                                  write_json)
from util.distributed import init_distributed
from util.hyper_para import HyperParameters
from util.errors import UserError, run_main

CONFIGS = {
    # name: (extra trainer flags, iteration numbers are counted from, labeled frames)
    'plain': ([], 0, (True, True, True)),
    'semi_warm': (['--semi', '--use_teacher', '--end_warm', '100000000'], 0, (True, True, True)),
    'semi': (['--semi', '--use_teacher', '--end_warm', '0'], 0, (True, False, True)),
    'phase2': (['--phase2_train', '0', '--phase2_start_update', '0'], 0, (True, False, False)),
}


def parse_args(argv):
    p = argparse.ArgumentParser(description='Time one training step of STCNModel against the '
                                            'original pseudo-label behaviour.')
    p.add_argument('--batch', type=int, default=None, help='default 4 on CUDA, 2 on CPU')
    p.add_argument('--crop', type=int, default=None, help='default 384 on CUDA, 192 on CPU')
    p.add_argument('--iters', type=int, default=3, help='timed steps per model')
    p.add_argument('--configs', nargs='+', default=list(CONFIGS), choices=list(CONFIGS))
    p.add_argument('--device', default=None, help='cpu, cuda, cuda:N (default: CUDA if present)')
    p.add_argument('--amp', action='store_true',
                   help='mixed precision for both (CUDA fp16; on a CPU with native bf16 the '
                        'trainer\'s --cpu_bf16); default fp32')
    p.add_argument('--versus', default='base', choices=['base', 'fp32'],
                   help='base: ours against the original pseudo-label behaviour; fp32: ours '
                        'with mixed precision against ours in fp32')
    p.add_argument('--threads', type=int, default=None, help='torch CPU threads')
    p.add_argument('--no_baseline', action='store_true')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--json', default=None, help='also write the results to this JSON file')
    p.add_argument('--debug', action='store_true', help='full tracebacks on errors')
    args = p.parse_args(argv)
    if args.iters < 1:
        p.error('--iters must be >= 1')
    if args.batch is not None and args.batch < 1:
        p.error('--batch must be >= 1')
    if args.crop is not None and (args.crop < 32 or args.crop % 16):
        p.error('--crop must be a multiple of 16, >= 32')
    return args


def make_batch(b, crop, labeled, seed):
    """A default-collated batch as dataset/vos_dataset.py yields it (two objects)."""
    g = torch.Generator().manual_seed(seed)
    cls = torch.zeros(b, 3, crop, crop, dtype=torch.long)
    q = crop // 8
    for j in range(b):
        for t in range(3):                       # two drifting rectangles per frame
            o = (j + t) * q // 4
            cls[j, t, q + o:4 * q + o, q:4 * q] = 1
            cls[j, t, 5 * q:7 * q, 4 * q - o:7 * q - o] = 2
    lab = torch.tensor([labeled] * b)
    return {
        'rgb': torch.randn(b, 3, 3, crop, crop, generator=g),
        'gt': (cls == 1).float()[:, :, None],
        'sec_gt': (cls == 2).float()[:, :, None],
        'cls_gt': cls,
        'selector': torch.ones(b, 2),
        'labeled': lab,
        'info': {'name': ['bench'] * b,
                 'frames': [[f'{t:05d}.jpg'] * b for t in range(3)],
                 'target_id': torch.ones(b, dtype=torch.long),
                 'second_id': torch.full((b,), 2, dtype=torch.long)},
    }


def make_model(cls, flags, args, dist, amp):
    para = HyperParameters().parse(
        ['--stage', '3', '--batch_size', str(args.batch), '--crop_size', str(args.crop),
         '--log_every', '1000000000', '--image_every', '1000000000',
         '--save_every', '1000000000'] + (['--cpu_bf16'] if amp else ['--no_amp']) + flags)
    torch.manual_seed(args.seed)
    return cls(para, dist)


def bench_config(name, args, dist, peak):
    flags, it0, labeled = CONFIGS[name]
    batch = make_batch(args.batch, args.crop, labeled, args.seed)
    if args.versus == 'fp32':
        impls = [('fp32', STCNModel, False), ('amp', STCNModel, True)]
    else:
        impls = [('ours', STCNModel, args.amp)] + \
            ([] if args.no_baseline else [('base', BaselineSTCNModel, args.amp)])
    models = {which: make_model(cls, flags, args, dist, amp) for which, cls, amp in impls}
    for m in models.values():                   # untimed: kernels, and the teacher is made
        m.do_pass(batch, it0, data_mode(m.para, it0))
    times = {which: [] for which in models}
    peaks = {which: [] for which in models}
    rises = {which: [] for which in models}
    for i in range(args.iters):
        order = list(models) if i % 2 == 0 else list(models)[::-1]
        for which in order:
            m = models[which]
            peak.reset()
            sync(dist.device)
            start = time.perf_counter()
            it = it0 + 1 + i
            m.do_pass(batch, it, data_mode(m.para, it))
            sync(dist.device)
            times[which].append(time.perf_counter() - start)
            peaks[which].append(peak.peak_mb())
            rises[which].append(peak.above_start_mb())
    out = {}
    for which, m in models.items():
        out[which] = {'sec_per_it': min(times[which]), 'median_sec_per_it': median(times[which]),
                      'times': times[which],
                      'peak_mb': median(peaks[which]), 'step_rise_mb': median(rises[which]),
                      'teacher_forwards': m.teacher_forward_calls,
                      'extra_forwards': getattr(m, 'baseline_extra_forwards', 0)}
    if 'base' in out:
        out['speedup'] = out['base']['sec_per_it'] / out['ours']['sec_per_it']
    if 'amp' in out:
        out['speedup'] = out['fp32']['sec_per_it'] / out['amp']['sec_per_it']
        out['amp_dtype'] = str(models['amp'].amp_dtype)
    del models
    return out


def main(argv):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    dist = init_distributed(device=args.device)
    cuda = dist.device.type == 'cuda'
    if args.batch is None:
        args.batch = 4 if cuda else 2
    if args.crop is None:
        args.crop = 384 if cuda else 192
    dtype, _ = training_amp(dist.device, cpu_bf16=True)
    if (args.amp or args.versus == 'fp32') and dtype is None:
        raise UserError(f'mixed precision does not apply on this {dist.device.type} (a CPU '
                        'needs native bf16: avx512_bf16 / amx_bf16)')
    if args.versus == 'fp32':
        what = f'fp32 against AMP ({str(dtype).replace("torch.", "")})'
    else:
        what = f'AMP ({str(dtype).replace("torch.", "")})' if args.amp else 'fp32'
    peak = PeakMemory(dist.device)
    print(f'device: {describe_device(dist.device)}; {load_note()}')
    print(f'training step: batch {args.batch}, {args.crop}x{args.crop} triplets, two objects, '
          f'{what}, {args.iters} timed steps per model (best; median)', flush=True)
    results = {'device': describe_device(dist.device), 'args': vars(args), 'configs': {}}
    for name in args.configs:
        r = bench_config(name, args, dist, peak)
        results['configs'][name] = r
        for which in ('ours', 'base', 'fp32', 'amp'):
            if which in r:
                s = r[which]
                print(f'{name:<10} {which}: {s["sec_per_it"]:.3f} s/it '
                      f'(median {s["median_sec_per_it"]:.3f}), peak {s["peak_mb"]:.0f} MB '
                      f'({peak.kind}), +{s["step_rise_mb"]:.0f} MB during the step; '
                      f'teacher forwards {s["teacher_forwards"]}, extra forwards '
                      f'{s["extra_forwards"]}', flush=True)
        if 'speedup' in r:
            pair = 'amp/fp32' if 'amp' in r else 'ours/base'
            print(f'{name:<10} {pair} speed: x{r["speedup"]:.2f}', flush=True)
    results['load_at_end'] = load_note()
    print(load_note(), flush=True)
    if args.json:
        write_json(args.json, results)
    return 0


if __name__ == '__main__':
    run_main(main)
