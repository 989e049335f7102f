"""DAVIS 2017 (val / test-dev) and DAVIS 2016 (val) inference, optionally followed by J&F.

    python eval_davis.py --model ckpts/stcn.pth --davis_path ../DAVIS --output out/d17 \
        [--split val|testdev] [--year 2017|2016] [--top 20] [--mem_every 5] [--include_last]
        [--amp] [--evaluate] [--resume] [--device cuda|cpu]

Writes <output>/<video>/<frame>.png (palette of the first-frame annotation, stored size).
The first frame's annotation propagates through the video with DAVIS-style memory (a frame
enters memory when its index % mem_every == 0). --evaluate runs the J&F evaluation against
the split's Annotations and writes the CSVs into <output>. --resume skips the videos whose
PNGs are all present and readable (after an interruption: every PNG is written atomically).
Exit status: 0 done, 2 bad input (one line naming the file), 130/143 interrupted.
"""
import argparse
import os

from dataset.test_datasets import DAVISTestDataset
from eval_common import run_videos
from inference_core import (add_exact_readout_flag, amp_note, load_model, print_args,
                            run_dataset)
from util.device import pick_device
from util.errors import UserError, run_main
from util.io import ensure_writable_dir
from util.layout import list_frames, stem
from util.outputs import check_apart


def build_parser():
    p = argparse.ArgumentParser(description='STCN inference on DAVIS 2017 / 2016.')
    p.add_argument('--model', default='ckpts/stcn.pth', help='checkpoint (state_dict)')
    p.add_argument('--davis_path', default='../DAVIS', help='DAVIS root (holds 2017/, 2016/)')
    p.add_argument('--output', required=True, help='output folder')
    p.add_argument('--split', default='val', choices=['val', 'testdev'])
    p.add_argument('--year', type=int, default=2017, choices=[2017, 2016])
    p.add_argument('--top', type=int, default=20, help='top-k memory entries per pixel')
    p.add_argument('--amp', action='store_true',
                   help='mixed precision: autocast on CUDA (bf16 or fp16), bf16 on a CPU '
                        'with native bf16 '
                        '(avx512_bf16 / amx_bf16), else fp32')
    p.add_argument('--mem_every', type=int, default=5)
    p.add_argument('--include_last', action='store_true',
                   help='keep the previous frame as a temporary memory entry')
    add_exact_readout_flag(p)
    p.add_argument('--evaluate', action='store_true',
                   help='compute J&F against the split annotations after inference')
    p.add_argument('--resume', action='store_true',
                   help='skip videos whose output PNGs are all present and readable')
    p.add_argument('--device', default=None, help="'cuda', 'cuda:1' or 'cpu' (default: auto)")
    p.add_argument('--debug', action='store_true', help='full tracebacks on errors')
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    print_args(args)
    if args.mem_every < 1 or args.top < 1:
        raise UserError('--mem_every and --top must be >= 1')
    if args.evaluate and args.split == 'testdev':
        raise UserError('--evaluate: test-dev has no public annotations beyond the first frame')
    dataset = DAVISTestDataset(args.davis_path, args.year, args.split)
    check_apart([('output folder (--output)', args.output)], dataset.inputs)
    device = pick_device(args.device)
    note = amp_note(device, args.amp)
    if note:
        print(note)
    net = load_model(args.model, device)
    ensure_writable_dir(args.output, 'output folder (--output)')
    stats = run_videos(net, dataset, args.output, args, device, 'davis',
                       lambda v: expected_frames(dataset, v), runner=run_dataset)
    if args.evaluate:
        stats['results'] = evaluate_outputs(dataset, args.output, args.split)
    return stats


def expected_frames(dataset, name):
    """Stems of the PNGs written for a DAVIS video: every frame."""
    return [stem(n) for n in list_frames(os.path.join(dataset.image_dir, name))]


def evaluate_outputs(dataset, output, split):
    """J&F of <output> against the dataset's annotations; CSVs go into <output>.

    DAVIS 2016 ground truth is 0/255 (255 would read as void): it is read binarised (every
    id > 0 is the one object).
    """
    from util.metrics import evaluate
    return evaluate(dataset.root, output, imageset=dataset.imageset, split=split,
                    out_dir=output, binarize=dataset.year == 2016)


if __name__ == '__main__':
    run_main(main)
