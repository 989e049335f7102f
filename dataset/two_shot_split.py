"""The two-shot split: pick the labeled frames of each video, write, read, and copy them out.

`make_split` reads DIR, one folder of PNG masks per video. For each video, `frames` distinct
frames whose mask holds at least one object are drawn (seeded by the seed and the video name,
so a video's choice does not depend on which other videos are present), in time order:

    {"video": ["00030.jpg", "00065.jpg"], ...}

the format of the paper's published `yv_rand_2frames.json` / `davis_rand_2frames.json`,
which `load_split` reads unchanged. `prepare_sparse_gt` copies the labeled frames' masks into
a sparse label folder (docs/data.md).
"""
import json
import os
import shutil
import sys
import zlib
from functools import partial

import numpy as np

from util.errors import UserError
from util.files import atomic_write, ensure_writable_dir, publish_folder, read_json
from util.image_io import read_mask
from util.layout import FRAME_EXTS, MASK_EXT, check_name, image_files, list_videos, sort_frames
from util.outputs import OutputLock, check_apart


def _video_dirs(annotations_dir, videos=None):
    if not os.path.isdir(annotations_dir):
        raise UserError(f'{annotations_dir}: annotation folder not found')
    found = list_videos(annotations_dir)
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
        pngs = image_files(folder, (MASK_EXT,))
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
        check_name(v, path)
        if not isinstance(names, list) or not 1 <= len(names) <= max_frames:
            raise UserError(f'{path}: video {v!r}: expected a list of 1 to {max_frames} frame '
                            f'names, got {names!r}')
        for n in names:
            if not isinstance(n, str) or not n.lower().endswith(FRAME_EXTS):
                raise UserError(f'{path}: video {v!r}: bad frame name {n!r} '
                                '(expected a file name like "00030.jpg")')
            check_name(n, path, 'frame')
        if len(set(names)) != len(names):
            raise UserError(f'{path}: video {v!r}: the same frame is listed twice')
        out[v] = sort_frames(names)
    return out


def _copy_into(sources, folder):
    for src in sources:
        shutil.copyfile(src, folder / os.path.basename(src))


def prepare_sparse_gt(annotations_dir, split, out_dir, split_name=None):
    """Copy each video's labeled-frame PNGs from annotations_dir to out_dir/<video>/.

    split: a dict {video: [frame names]} or the path of a split JSON (read with load_split).
    split_name: how errors name the split when a dict is given.
    Returns the number of PNGs written.
    """
    if not isinstance(split, dict):
        split_name = str(split)
        split = load_split(split)
    name = split_name or 'the split'
    annotations_dir, out_dir = str(annotations_dir), str(out_dir)
    if not os.path.isdir(annotations_dir):
        raise UserError(f'{annotations_dir}: annotation folder not found')
    check_apart([('output folder (--out)', out_dir)],
                [('annotation folder', annotations_dir), ('split', split_name)])
    jobs = {}                                  # video -> [source png]
    for v in sorted(split):
        src_dir = os.path.join(annotations_dir, v)
        if not os.path.isdir(src_dir):
            raise UserError(f'{name}: video {v!r} has no folder {src_dir}')
        wanted = []
        for frame in split[v]:
            png = os.path.splitext(frame)[0] + '.png'
            src = os.path.join(src_dir, png)
            if not os.path.isfile(src):
                raise UserError(f'{name}: video {v!r}, frame {frame!r}: missing mask {src}')
            if not read_mask(src).any():
                raise UserError(f'{src}: labeled frame {frame!r} of video {v!r} in {name} '
                                'holds no object (pick frames that show the objects)')
            wanted.append(png)
            jobs.setdefault(v, []).append(src)
        dst_dir = os.path.join(out_dir, v)
        if os.path.isdir(dst_dir) and not os.path.islink(dst_dir):   # a link is replaced
            extra = sorted(f for f in os.listdir(dst_dir)
                           if f.lower().endswith('.png') and f not in wanted)
            if extra:
                raise UserError(f'{dst_dir}: already holds {extra[0]}, which {name} does not '
                                f'list for video {v!r}; use an empty --out folder')
    ensure_writable_dir(out_dir, 'output folder (--out)')
    with OutputLock(out_dir, 'output folder (--out)'):
        for v, sources in jobs.items():   # a video's labels appear together or not at all
            publish_folder(os.path.join(out_dir, v), partial(_copy_into, sources))
    return sum(len(s) for s in jobs.values())
