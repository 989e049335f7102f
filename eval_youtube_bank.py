"""The merged pseudo-label bank of two-shot phase 2 in one run (run_intermediate.sh ... bank).

    python eval_youtube_bank.py --model phase1.pth --output ../vos_phase2/phase1_merge_480p \
        --res -1 [--data_file <labels>]
    python eval_youtube_bank.py --model phase1.pth --output ../vos_phase2/phase1_merge_davis \
        --mem_every 5 --davis [--davis_path ../DAVIS/2017]

The flags, inputs and defaults of eval_youtube_phase2.py, without --reverse / --only_sec_gt /
--zip: the four passes run, each only as far as the merge (phase2_scripts/merge_left_right.py)
uses it, and <output>/Annotations/<video>/<frame>.png is byte for byte what the four passes
and the merge write, with about half the frames segmented (phase2/bank.py).
Exit status: 0 done, 2 bad input (one line naming the file), 130/143 interrupted.
"""
from phase2 import intermediate
from util.errors import run_main


def build_parser():
    return intermediate.build_parser('The merged pseudo-label bank of two-shot phase 2 in one '
                                     'run.', bank=True)


def main(argv=None):
    return intermediate.main(build_parser().parse_args(argv), bank=True)


if __name__ == '__main__':
    run_main(main)
