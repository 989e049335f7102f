"""DAVIS 2016 val inference: eval_davis.py's flags, with the year fixed to 2016.

    python eval_davis_2016.py --model ckpts/stcn.pth --davis_path ../DAVIS --output out/d16 \
        [--top 20] [--mem_every 5] [--include_last] [--amp] [--evaluate] [--resume]

Reads <davis_path>/2016/{JPEGImages,Annotations}/480p/<video>/ and ImageSets/2016/val.txt
(<davis_path> may also be the 2016 folder itself); single object: every id > 0 of the
annotation is the object. Writes <output>/<video>/<frame>.png for every frame, with
DAVIS-style memory; --evaluate writes the J&F CSVs into <output>.
Exit status: 0 done, 2 bad input (one line naming the file), 130/143 interrupted.
"""
import eval_driver
from util.errors import run_main


def build_parser():
    p = eval_driver.parser('STCN inference on DAVIS 2016 val.')
    p.add_argument('--davis_path', default='../DAVIS', help='DAVIS root (holds 2016/)')
    p.add_argument('--split', default='val', choices=['val', 'testdev'])
    p.add_argument('--year', type=int, default=2016, choices=[2017, 2016],
                   help="accepted for eval_davis.py's command lines: the year is 2016")
    p.add_argument('--evaluate', action='store_true',
                   help='compute J&F against the val annotations after inference')
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    args.year = 2016
    eval_driver.check_flags(args)
    return eval_driver.run_davis(args)


if __name__ == '__main__':
    run_main(main)
