"""DAVIS 2017 semi-supervised J&F evaluation of a folder of predicted masks (util.metrics).

  python -m scripts.evaluate --gt_path DIR --pred_path DIR [--imageset FILE] [--split val]
                          [--out DIR] [--workers N] [--binarize] [--plot]

Writes global_results-<split>.csv and per-sequence_results-<split>.csv (into --out, default
--pred_path) and prints the tables; --plot also writes per-sequence_results-<split>.png (a J&F
bar chart) beside the CSVs.
"""
import argparse
import os

from util.errors import UserError, run_main
from util.layout import check_name
from util.files import ensure_writable_dir
from util.outputs import check_file_output, check_folder_output
from util.metrics import evaluate


def main(argv=None):
    p = argparse.ArgumentParser(description='DAVIS 2017 semi-supervised J&F evaluation.')
    p.add_argument('--gt_path', required=True,
                   help='folder of <video>/*.png, or a DAVIS root with Annotations/480p/')
    p.add_argument('--pred_path', required=True, help='folder of <video>/<frame>.png')
    p.add_argument('--imageset', default=None,
                   help='text file, one video per line (default: ImageSets/2017/<split>.txt '
                        'of a DAVIS root, else every video folder)')
    p.add_argument('--split', default='val', help='name used in the CSV file names')
    p.add_argument('--out', default=None, help='folder for the CSVs (default: --pred_path)')
    p.add_argument('--workers', type=int, default=1, help='processes evaluating videos')
    p.add_argument('--binarize', action='store_true',
                   help='ground truth as one object, every id > 0 -> 1 (DAVIS 2016 0/255 masks)')
    p.add_argument('--plot', action='store_true',
                   help='also write per-sequence_results-<split>.png, a J&F bar chart')
    p.add_argument('--debug', action='store_true', help='show tracebacks of input errors')
    args = p.parse_args(argv)
    if args.workers < 1:
        raise UserError(f'--workers must be at least 1, got {args.workers}')
    if args.out is not None:
        check_folder_output(args.out, 'CSV output folder (--out)')
        ensure_writable_dir(args.out, 'CSV output folder (--out)')
    check_name(args.split, '--split', 'split')             # it names the output files
    plot = os.path.join(args.pred_path if args.out is None else args.out,
                        f'per-sequence_results-{args.split}.png')
    if args.plot:
        check_file_output(plot, 'J&F bar chart', [('prediction folder', args.pred_path),
                                                 ('ground truth', args.gt_path)])
    res = evaluate(args.gt_path, args.pred_path, args.imageset, args.split, args.out,
                   args.workers, binarize=args.binarize)
    if args.plot:
        from scripts.plots import jf_bar_chart
        path = jf_bar_chart(res['per_object'], plot,
                            title=f'J&F per sequence ({args.split}; J&F-Mean '
                                  f'{res["J&F-Mean"]:.3f})')
        print(f'J&F bar chart written to {path}')
    return 0


if __name__ == '__main__':
    run_main(main)
