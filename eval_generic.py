"""Inference on any folder of videos with sparse first-appearance labels.

    python eval_generic.py --model ckpts/stcn.pth --data_path DATA --output OUT \
        [--top 20] [--mem_every 5] [--include_last] [--amp_off] [--res 480] [--resume] \
        [--device cpu]

DATA/JPEGImages/<video>/*.jpg|png and DATA/Annotations/<video>/ holding only the labeled
frames (an object is labeled where it first appears; several labeled frames are fine).
Writes OUT/<video>/<frame>.png for every frame from the first labeled one on, in the
annotation's palette, with YouTube-style memory (a memory frame every mem_every frames).
As STCN's eval_generic.py: frames resized so the shorter side is 480 (--res; -1: as stored)
and mixed precision on (--amp_off: fp32; on a CPU it is bf16 where the CPU computes bf16
natively, fp32 elsewhere).
--resume skips the videos whose PNGs are all present and readable.
Exit status: 0 done, 2 bad input (one line naming the file), 130/143 interrupted.
"""
import eval_driver
from dataset.generic_test_dataset import GenericTestDataset
from util.errors import run_main


def build_parser():
    p = eval_driver.parser('STCN inference on a generic folder of videos.')
    p.add_argument('--data_path', required=True, help='folder with JPEGImages/ and Annotations/')
    p.add_argument('--res', type=int, default=480,
                   help='resize the shorter side to this before inference (-1: as stored)')
    p.add_argument('--amp_off', action='store_true',
                   help='run in fp32 (mixed precision is on by default, as in STCN; --amp is '
                        'accepted and changes nothing)')
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    args.amp = not args.amp_off
    eval_driver.check_flags(args)
    dataset = GenericTestDataset(args.data_path, res=args.res)
    return eval_driver.run(args, dataset, args.output, mem_style='youtube')


if __name__ == '__main__':
    run_main(main)
