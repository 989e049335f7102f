"""Intermediate inference of two-shot phase 2 with the original's command line.

    python eval_youtube_phase2.py --model phase1.pth --output ../vos_phase2/phase1_left_480p \
        --output_all --res -1 [--reverse] [--only_sec_gt]
    python eval_youtube_phase2.py --model phase1.pth --output ../vos_phase2/phase1_left_davis \
        --mem_every 5 --output_all --davis [--davis_path ../DAVIS/2017] [--reverse] [--only_sec_gt]

Always intermediate inference (eval_youtube.py's mode, same flags and outputs), with the
original's defaults: frames of <yv_path>/train_480p and labels of <yv_path>/phase2/yv_gt_480p
at --res -1, frames of <yv_path>/train (resized to --res) and labels of phase2/yv_gt
otherwise; with --davis the DAVIS 2017 trainval frames at 480p as stored and labels of
<davis_path>/phase2/davis_gt (--davis_path default ../DAVIS/2017; the folder holding 2017/
works too). --mem_every defaults to 1, the YouTube-style memory schedule is used for DAVIS
too. --output_all is accepted as the no-op it is here (every frame from the first label on
is written). --data_file names another sparse label folder (or a two-frame split JSON).
"""
import eval_driver
from phase2 import intermediate
from util.errors import run_main


def build_parser():
    p = eval_driver.parser('Intermediate inference for two-shot phase 2, the original\'s command '
                           'line.', mem_every=1,
                           mem_every_help='default 1 (the original\'s DAVIS scripts pass 5)')
    p.add_argument('--yv_path', default='../YouTube', help='YouTube-VOS root')
    p.add_argument('--split', default='valid', help='accepted for eval_youtube.py\'s command '
                                                    'lines (unused here)')
    p.add_argument('--output_all', action='store_true',
                   help='accepted for the original\'s command lines: intermediate inference '
                        'writes every frame from the first label on')
    p.add_argument('--res', type=int, default=480,
                   help='-1: frames of train_480p, labels of phase2/yv_gt_480p; else frames of '
                        'train resized to this shorter side, labels of phase2/yv_gt')
    p.add_argument('--zip', action='store_true', help='pack <output>/Annotations into '
                                                      '<output>.zip')
    intermediate.add_flags(p, davis_path='../DAVIS/2017')
    eval_driver.add_shard_flag(p)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    mode = intermediate.select_mode(args, always_intermediate=True)
    eval_driver.check_flags(args)
    intermediate.check_flags(args, mode, output_all_ok=True)
    dataset = intermediate.build_dataset(args, mode, original_roots=True)
    return intermediate.run(args, mode, dataset)


if __name__ == '__main__':
    run_main(main)
