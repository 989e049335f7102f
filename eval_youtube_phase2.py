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
import eval_youtube
from util.errors import run_main


def main(argv=None):
    return eval_youtube.main(argv, phase2=True)


if __name__ == '__main__':
    run_main(main)
