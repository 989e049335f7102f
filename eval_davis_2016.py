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
from dataset.davis_test_dataset import DAVISTestDataset
from util.errors import UserError, run_main


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
    if args.evaluate and args.split == 'testdev':
        raise UserError('--evaluate: test-dev has no public annotations beyond the first frame')
    dataset = DAVISTestDataset(args.davis_path, 2016, args.split)
    stats = eval_driver.run(args, dataset, args.output, mem_style='davis')
    if args.evaluate:       # J&F against the split's annotations; the CSVs go into --output
        from util.metrics import evaluate     # cv2 is imported only for scoring
        stats['results'] = evaluate(dataset.root, args.output, imageset=dataset.imageset,
                                    split=dataset.split, out_dir=args.output,
                                    binarize=dataset.year == 2016)   # 2016 truth is 0/255
    return stats


if __name__ == '__main__':
    run_main(main)
