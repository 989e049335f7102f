"""Inference on any folder of videos with sparse first-appearance labels.

    python eval_generic.py --model ckpts/stcn.pth --data_path DATA --output OUT \
        [--top 20] [--mem_every 5] [--include_last] [--amp] [--res -1] [--device cpu]

DATA/JPEGImages/<video>/*.jpg|png and DATA/Annotations/<video>/ holding only the labeled
frames (an object is labeled where it first appears; several labeled frames are fine).
Writes OUT/<video>/<frame>.png for every frame from the first labeled one on, in the
annotation's palette, with YouTube-style memory (a memory frame every mem_every frames).
"""
import argparse

from dataset.test_datasets import GenericTestDataset
from inference_core import amp_note, load_model, print_args, run_dataset
from util.device import pick_device
from util.errors import UserError, run_main


def build_parser():
    p = argparse.ArgumentParser(description='STCN inference on a generic folder of videos.')
    p.add_argument('--model', default='ckpts/stcn.pth')
    p.add_argument('--data_path', required=True, help='folder with JPEGImages/ and Annotations/')
    p.add_argument('--output', required=True)
    p.add_argument('--top', type=int, default=20)
    p.add_argument('--amp', action='store_true')
    p.add_argument('--mem_every', type=int, default=5)
    p.add_argument('--include_last', action='store_true')
    p.add_argument('--res', type=int, default=-1,
                   help='resize the shorter side to this before inference (-1: as stored)')
    p.add_argument('--device', default=None)
    p.add_argument('--debug', action='store_true')
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    print_args(args)
    if args.mem_every < 1 or args.top < 1:
        raise UserError('--mem_every and --top must be >= 1')
    dataset = GenericTestDataset(args.data_path, res=args.res)
    device = pick_device(args.device)
    note = amp_note(device, args.amp)
    if note:
        print(note)
    net = load_model(args.model, device)
    return run_dataset(net, dataset, args.output, top_k=args.top, mem_every=args.mem_every,
                       include_last=args.include_last, mem_style='youtube', device=device,
                       amp=args.amp)


if __name__ == '__main__':
    run_main(main)
