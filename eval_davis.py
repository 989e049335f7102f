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
from dataset.davis_test_dataset import DAVISTestDataset
from util.errors import UserError, run_main


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
    if args.evaluate and args.split == 'testdev':
        raise UserError('--evaluate: test-dev has no public annotations beyond the first frame')
    dataset = DAVISTestDataset(args.davis_path, args.year, args.split)
    stats = eval_driver.run(args, dataset, args.output, mem_style='davis')
    if args.evaluate:       # J&F against the split's annotations; the CSVs go into --output
        from util.metrics import evaluate     # cv2 is imported only for scoring
        stats['results'] = evaluate(dataset.root, args.output, imageset=dataset.imageset,
                                    split=dataset.split, out_dir=args.output,
                                    binarize=dataset.year == 2016)   # 2016 truth is 0/255
    return stats


if __name__ == '__main__':
    run_main(main)
