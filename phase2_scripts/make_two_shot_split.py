"""Pick the labeled frames of each training video: the two-shot split JSON.

    python -m phase2_scripts.make_two_shot_split --annotations DIR --out split.json \
        [--seed S --frames 2 --video_list train.txt]

(or `python phase2_scripts/make_two_shot_split.py ...`, also from inside phase2_scripts/).
DIR holds one folder of PNG masks per video; see dataset.two_shot_split.make_split for the rule.
"""
if __name__ == '__main__' and not __package__:    # run as a file: rerun as the module
    import as_module                                # the file beside this one
    as_module.rerun(__file__)

import argparse  # noqa: E402
import os  # noqa: E402

from util.errors import UserError, run_main  # noqa: E402
from util.outputs import check_file_output  # noqa: E402
from dataset.two_shot_split import make_split, write_split  # noqa: E402


def main(argv):
    p = argparse.ArgumentParser(description='Pick the labeled frames of each video (two-shot).')
    p.add_argument('--annotations', required=True, help='folder of <video>/<frame>.png masks')
    p.add_argument('--out', required=True, help='split JSON to write')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--frames', type=int, default=2, help='labeled frames per video')
    p.add_argument('--video_list', default=None,
                   help='optional text file of video names (e.g. ImageSets/2017/train.txt)')
    p.add_argument('--debug', action='store_true', help='full tracebacks on errors')
    a = p.parse_args(argv)
    if a.frames < 1:
        p.error('--frames must be >= 1')
    check_file_output(a.out, 'split file (--out)', [('annotation folder', a.annotations),
                                                    ('video list', a.video_list)])
    videos = None
    if a.video_list:
        if not os.path.isfile(a.video_list):
            raise UserError(f'{a.video_list}: video list not found')
        with open(a.video_list) as f:
            videos = [ln.strip() for ln in f if ln.strip()]
    split = make_split(a.annotations, frames=a.frames, seed=a.seed, videos=videos)
    write_split(split, a.out)
    print(f'{a.out}: {len(split)} videos, '
          f'{sum(len(x) for x in split.values())} labeled frames')
    return 0


if __name__ == '__main__':
    run_main(main)
