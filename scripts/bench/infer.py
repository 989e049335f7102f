"""Inference benchmark: InferenceCore against the reference loop (scripts/bench/baseline.py).

    python -m scripts.bench.infer [--height 480 --width 854 --frames 10 --objects 1 2 3
        --mem_every 5 --repeats 1 --device cpu --threads N --sweep 1 4 8 16 --ablate
        --json OUT]

For every object count K: one synthetic video (scripts.data.synthetic_video.make_video, seeded), labeled on
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

import torch

from model.eval_network import STCN
from model.precision import amp_note
from scripts.bench.common import PARTS, PeakMemory, describe_device, load_note, write_json
from scripts.bench.infer_runs import bench_video
from scripts.bench.infer_sweeps import ablations, readout_sweep
from util.device import pick_device
from util.errors import UserError, run_main


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
