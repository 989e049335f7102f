"""Write a deterministic synthetic VOS data set (scripts.data.synthetic_data) in a layout of docs/data.md.

    python -m scripts.data.synthetic --out DIR --layout {davis,youtube,static,bl30k} \
        [--videos N --frames T --height H --width W --objects K --seed S --val_videos M]
        [--max_frames T2 --drift D]
"""
import argparse

from util.errors import run_main
from util.outputs import check_folder_output
from scripts.data.synthetic_data import LAYOUT_ROOTS, generate


def main(argv):
    p = argparse.ArgumentParser(description='Write a deterministic synthetic VOS data set.')
    p.add_argument('--out', required=True, help='output folder (the layout root goes inside)')
    p.add_argument('--layout', required=True, choices=sorted(LAYOUT_ROOTS))
    p.add_argument('--videos', type=int, default=10,
                   help='videos (davis: trainval incl. val; youtube: train; static: images '
                        'per data set)')
    p.add_argument('--frames', type=int, default=20, help='labeled frames per video')
    p.add_argument('--max_frames', type=int, default=None,
                   help='videos get their own length, uniform in --frames..--max_frames')
    p.add_argument('--drift', type=float, default=0.0,
                   help='appearance change over time, 0..1 (colours, pattern, scale, z-order)')
    p.add_argument('--height', type=int, default=120)
    p.add_argument('--width', type=int, default=216)
    p.add_argument('--objects', type=int, default=2, help='objects per video')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--val_videos', type=int, default=2,
                   help='davis: how many of the last videos are val; youtube: valid videos')
    p.add_argument('--debug', action='store_true', help='full tracebacks on errors')
    a = p.parse_args(argv)
    check_folder_output(a.out, 'output folder (--out)')
    paths = generate(a.out, a.layout, videos=a.videos, frames=a.frames, height=a.height,
                     width=a.width, objects=a.objects, seed=a.seed, val_videos=a.val_videos,
                     max_frames=a.max_frames, drift=a.drift)
    for k, v in paths.items():
        print(f'{k}: {v}')
    return 0


if __name__ == '__main__':
    run_main(main)
