"""Inference on any folder of videos with sparse first-appearance labels.

    python eval_generic.py --model ckpts/stcn.pth --data_path DATA --output OUT \
        [--top 20] [--mem_every 5] [--include_last] [--amp] [--res -1] [--resume] [--device cpu]

DATA/JPEGImages/<video>/*.jpg|png and DATA/Annotations/<video>/ holding only the labeled
frames (an object is labeled where it first appears; several labeled frames are fine).
Writes OUT/<video>/<frame>.png for every frame from the first labeled one on, in the
annotation's palette, with YouTube-style memory (a memory frame every mem_every frames).
--resume skips the videos whose PNGs are all present and readable.
Exit status: 0 done, 2 bad input (one line naming the file), 130/143 interrupted.
"""
import argparse
import os

from dataset.test_datasets import GenericTestDataset
from eval_common import first_object_frame, run_videos
from inference_core import add_exact_readout_flag, amp_note, load_model, print_args
from util.device import pick_device
from util.errors import UserError, run_main
from util.io import ensure_writable_dir
from util.layout import list_frames, stem
from util.outputs import check_apart


def build_parser():
    p = argparse.ArgumentParser(description='STCN inference on a generic folder of videos.')
    p.add_argument('--model', default='ckpts/stcn.pth')
    p.add_argument('--data_path', required=True, help='folder with JPEGImages/ and Annotations/')
    p.add_argument('--output', required=True)
    p.add_argument('--top', type=int, default=20)
    p.add_argument('--amp', action='store_true',
                   help='mixed precision: autocast on CUDA (bf16 or fp16), bf16 on a CPU '
                        'with native bf16 '
                        '(avx512_bf16 / amx_bf16), else fp32')
    p.add_argument('--mem_every', type=int, default=5)
    p.add_argument('--include_last', action='store_true')
    p.add_argument('--res', type=int, default=-1,
                   help='resize the shorter side to this before inference (-1: as stored)')
    add_exact_readout_flag(p)
    p.add_argument('--resume', action='store_true',
                   help='skip videos whose output PNGs are all present and readable')
    p.add_argument('--device', default=None)
    p.add_argument('--debug', action='store_true')
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    print_args(args)
    if args.mem_every < 1 or args.top < 1:
        raise UserError('--mem_every and --top must be >= 1')
    dataset = GenericTestDataset(args.data_path, res=args.res)
    check_apart([('output folder (--output)', args.output)], dataset.inputs)
    device = pick_device(args.device)
    note = amp_note(device, args.amp)
    if note:
        print(note)
    net = load_model(args.model, device)
    ensure_writable_dir(args.output, 'output folder (--output)')
    return run_videos(net, dataset, args.output, args, device, 'youtube',
                      lambda v: expected_frames(dataset, v))


def expected_frames(dataset, name):
    """Stems written for a generic video: every frame from the first labeled object on."""
    stems = [stem(n) for n in list_frames(os.path.join(dataset.image_dir, name))]
    first = first_object_frame(stems, os.path.join(dataset.mask_dir, name))
    return None if first is None else stems[first:]


if __name__ == '__main__':
    run_main(main)
