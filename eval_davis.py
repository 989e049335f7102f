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
import eval_driver
from util.errors import run_main


def build_parser():
    p = eval_driver.parser('STCN inference on DAVIS 2017 / 2016.')
    p.add_argument('--davis_path', default='../DAVIS', help='DAVIS root (holds 2017/, 2016/)')
    p.add_argument('--split', default='val', choices=['val', 'testdev'])
    p.add_argument('--year', type=int, default=2017, choices=[2017, 2016])
    p.add_argument('--evaluate', action='store_true',
                   help='compute J&F against the split annotations after inference')
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    eval_driver.check_flags(args)
    return eval_driver.run_davis(args)


if __name__ == '__main__':
    run_main(main)
