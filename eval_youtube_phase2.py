"""Intermediate inference of two-shot phase 2 (one of the four passes), the original's command line.

    python eval_youtube_phase2.py --model phase1.pth --output ../vos_phase2/phase1_left_480p \
        --output_all --res -1 [--reverse] [--only_sec_gt] [--data_file <labels>]
    python eval_youtube_phase2.py --model phase1.pth --output ../vos_phase2/phase1_left_davis \
        --mem_every 5 --output_all --davis [--davis_path ../DAVIS/2017] [--reverse] [--only_sec_gt]

Frames of <yv_path>/train_480p and labels of <yv_path>/phase2/yv_gt_480p at --res -1, frames
of <yv_path>/train (resized to --res) and labels of phase2/yv_gt otherwise; with --davis the
DAVIS 2017 trainval frames at 480p as stored and labels of <davis_path>/phase2/davis_gt (the
folder holding 2017/ works too). --data_file names another sparse label folder <video>/<pngs>
or a two-frame split JSON. The passes left / leftsecgt / right / rightsecgt add nothing /
--only_sec_gt / --reverse / --reverse --only_sec_gt. Every frame from the first used label
(processing order) on is written to <output>/Annotations/<video>/ (--output_all is accepted as
the no-op it is here); --zip also packs it into <output>.zip. Memory follows the YouTube-style
schedule, DAVIS included; --mem_every defaults to 1. eval_youtube_bank.py writes the merged
bank of the four passes in one run. --resume and --shard I/N as the other eval scripts.
Exit status: 0 done, 2 bad input (one line naming the file), 130/143 interrupted.
"""
from phase2 import intermediate
from util.errors import run_main


def build_parser():
    return intermediate.build_parser('Intermediate inference for two-shot phase 2 (one pass), '
                                     'the original\'s command line.', bank=False)


def main(argv=None):
    return intermediate.main(build_parser().parse_args(argv), bank=False)


if __name__ == '__main__':
    run_main(main)
