"""Pick the labeled frames of each training video (the two-shot split) and read split files.

    python -m util.make_two_shot_split --annotations DIR --out split.json \
        [--seed S --frames 2 --video_list train.txt]

DIR holds one folder of PNG masks per video. For each video, `--frames` distinct frames whose
mask holds at least one object are drawn (seeded by the seed and the video name, so a video's
choice does not depend on which other videos are present) and listed in time order:

    {"video": ["00030.jpg", "00065.jpg"], ...}

the format of the paper's published `yv_rand_2frames.json` / `davis_rand_2frames.json`,
which `load_split` reads unchanged.
"""
import argparse
import json
import os
import sys
import zlib

import numpy as np

from util.errors import UserError, run_main
from util.io import atomic_write, read_json, read_mask
from util.layout import FRAME_EXTS, sort_frames


def _video_dirs(annotations_dir, videos=None):
    if not os.path.isdir(annotations_dir):
        raise UserError(f'{annotations_dir}: annotation folder not found')
    found = sorted(d for d in os.listdir(annotations_dir)
                   if os.path.isdir(os.path.join(annotations_dir, d)))
    if videos is None:
        return found
    missing = [v for v in videos if v not in found]
    if missing:
        raise UserError(f'{annotations_dir}: no folder for video {missing[0]!r} '
                        f'({len(missing)} listed videos missing)')
    return list(videos)


def make_split(annotations_dir, frames=2, seed=0, videos=None):
    """{video: [frame.jpg, ...]} with `frames` distinct labeled frames per video, time-sorted.

    Only frames whose mask has a nonzero pixel are candidates; a video with fewer candidates
    gets all of them, a video with none is left out (with a warning on stderr).
    videos: restrict to these folder names (default: every folder under annotations_dir).
    """
    if frames < 1:
        raise ValueError('frames must be >= 1')
    annotations_dir = str(annotations_dir)
    split = {}
    for v in _video_dirs(annotations_dir, videos):
        folder = os.path.join(annotations_dir, v)
        pngs = sorted(f for f in os.listdir(folder) if f.lower().endswith('.png'))
        cand = [f for f in pngs if read_mask(os.path.join(folder, f)).any()]
        if not cand:
            print(f'warning: {folder}: no mask with an object, video left out of the split',
                  file=sys.stderr)
            continue
        rng = np.random.default_rng([int(seed), zlib.crc32(v.encode())])
        pick = rng.choice(len(cand), size=min(frames, len(cand)), replace=False)
        split[v] = [os.path.splitext(cand[i])[0] + '.jpg' for i in sorted(pick.tolist())]
    if not split:
        raise UserError(f'{annotations_dir}: no video folder with labeled frames found')
    return split


def write_split(split, path):
    """Write a split dict as JSON, atomically."""
    text = json.dumps(split, indent=1, sort_keys=True) + '\n'

    def _w(tmp):
        with open(tmp, 'w') as f:
            f.write(text)
    atomic_write(str(path), _w)


def load_split(path, max_frames=2):
    """Read and validate a split JSON; returns {video: [frame names in time order]}.

    Values must be lists of 1..max_frames distinct image names ("00030.jpg"). Any problem is a
    UserError naming the file.
    """
    path = str(path)
    data = read_json(path, 'split file')
    if not isinstance(data, dict) or not data:
        raise UserError(f'{path}: expected a non-empty object {{video: ["00030.jpg", ...]}}')
    out = {}
    for v, names in data.items():
        if not isinstance(names, list) or not 1 <= len(names) <= max_frames:
            raise UserError(f'{path}: video {v!r}: expected a list of 1 to {max_frames} frame '
                            f'names, got {names!r}')
        for n in names:
            if not isinstance(n, str) or not n.lower().endswith(FRAME_EXTS) or '/' in n:
                raise UserError(f'{path}: video {v!r}: bad frame name {n!r} '
                                '(expected a file name like "00030.jpg")')
        if len(set(names)) != len(names):
            raise UserError(f'{path}: video {v!r}: the same frame is listed twice')
        out[v] = sort_frames(names)
    return out


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
