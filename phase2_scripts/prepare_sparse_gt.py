"""Build the sparse label folder of a two-shot split: only the labeled frames' PNGs per video.

Run from the repository root:
    python phase2_scripts/prepare_sparse_gt.py --annotations DIR --split split.json --out OUT

For every video of the split JSON ({video: ["00030.jpg", "00065.jpg"]}) the masks
DIR/<video>/00030.png and 00065.png are copied byte for byte (palette kept) to OUT/<video>/,
each video folder published whole (util.io.publish_folder: never one label of two).
Everything is checked before anything is written: a video or frame named in the JSON but
absent under DIR, a labeled mask that holds no object, an OUT that cannot be written, or an
OUT/<video> folder already holding other PNGs, is an error (one line naming the file, exit 2).
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
from functools import partial  # noqa: E402

from util.errors import UserError, run_main  # noqa: E402
from util.io import ensure_writable_dir, publish_folder, read_mask  # noqa: E402
from util.outputs import OutputLock, check_apart  # noqa: E402
from util.make_two_shot_split import load_split  # noqa: E402


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
        if os.path.isdir(dst_dir):
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


def main(argv):
    p = argparse.ArgumentParser(description='Copy the labeled frames of a two-shot split.')
    p.add_argument('--annotations', required=True, help='folder of <video>/<frame>.png masks')
    p.add_argument('--split', required=True, help='split JSON {video: ["00030.jpg", ...]}')
    p.add_argument('--out', required=True, help='sparse label folder to fill')
    p.add_argument('--debug', action='store_true', help='full tracebacks on errors')
    a = p.parse_args(argv)
    n = prepare_sparse_gt(a.annotations, a.split, a.out)
    print(f'{a.out}: wrote {n} masks')
    return 0


if __name__ == '__main__':
    run_main(main)
