"""Check a VOS data set before a long run and list every problem found, one line each.

    python -m scripts.data.check_dataset --root DIR --layout {davis,youtube,generic} \
        [--split_json FILE] [--sparse DIR] [--max_problems N] [--workers W]

Layouts (docs/data.md):
  davis    DIR is the DAVIS folder: 2017/trainval/{JPEGImages,Annotations}/480p/<video>/ and
           ImageSets/2017/{train,val}.txt (required); 2017/test-dev and 2016 when present.
  youtube  DIR is the YouTube folder: train_480p/{JPEGImages,Annotations} and
           valid/{JPEGImages,Annotations} + valid/meta.json (required);
           all_frames/valid_all_frames/JPEGImages when present.
  generic  DIR/JPEGImages/<video>/ + DIR/Annotations/<video>/ (labeled frames only).

Every frame and mask is actually decoded (PIL `.load()`), so truncated or corrupt files are
found. Masks must be 8-bit palette or grayscale PNGs of their frame's size; RGB masks are
reported with whether util.image_io.read_mask maps them unambiguously to DAVIS palette ids.
Frames that must carry a label (DAVIS first frames, YouTube first-appearance frames, two-shot
frames, sparse labels) must hold at least one object. `--split_json` (two-frame JSON
{video: ["00030.jpg", "00065.jpg"]}) and `--sparse` (folder <video>/<labeled frame>.png) are
checked against the layout's training frames (DAVIS 2017 trainval, YouTube train_480p, or
the generic folders).

Each problem is printed as `<file>: <what is wrong>`, then one summary line.
Exit status: 0 no problem, 1 problems found, 2 unusable arguments.
"""
import argparse
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from functools import partial

from util.errors import UserError, run_main
from util.files import CurrentStderr
from dataset.two_shot_split import load_split
from scripts.data.layout_checks import (check_sparse_video, check_split_video, davis_tasks,
                                        generic_tasks, training_dirs, youtube_tasks)
from scripts.data.video_checks import Checker, subdirs

LAYOUTS = ('davis', 'youtube', 'generic')


def _run(root, layout, split_json=None, sparse=None, progress=False, workers=1):
    """Check everything; returns the Checker (problems + counts)."""
    root = str(root)
    if layout not in LAYOUTS:
        raise UserError(f'unknown layout {layout!r}; choose one of {", ".join(LAYOUTS)}')
    if not os.path.isdir(root):
        raise UserError(f'{root}: data set folder not found')
    if split_json is not None and not os.path.isfile(str(split_json)):
        raise UserError(f'{split_json}: split file not found')
    if sparse is not None and not os.path.isdir(str(sparse)):
        raise UserError(f'{sparse}: sparse label folder not found')
    pool = ThreadPoolExecutor(workers) if workers > 1 else None   # PIL decodes without the GIL
    try:
        ck = Checker(pool)
        tasks = {'davis': davis_tasks, 'youtube': youtube_tasks,
                 'generic': generic_tasks}[layout](ck, root)
        jpg, ann = training_dirs(root, layout)
        split = None
        if split_json is not None:
            split_json = str(split_json)
            try:
                split = load_split(split_json)
            except UserError as e:
                ck.add_line(str(e))
            for v, names in sorted((split or {}).items()):
                tasks.append((v, partial(check_split_video, ck, split_json, v, names, jpg, ann,
                                         None if sparse is None else str(sparse))))
        if sparse is not None:
            sparse = str(sparse)
            vids = subdirs(sparse, ck)
            if not vids:
                ck.add(sparse, 'sparse label folder holds no video folders')
            for v in vids:
                tasks.append((v, partial(check_sparse_video, ck, sparse, v, jpg, split,
                                         split_json)))
        it = tasks
        if progress and tasks:
            import progressbar
            it = progressbar.ProgressBar(max_value=len(tasks), prefix='checking ',
                                         fd=CurrentStderr())(tasks)
        for _, fn in it:
            fn()
            ck.tasks += 1
    finally:
        if pool is not None:
            pool.shutdown()
    return ck


def check_dataset(root, layout, split_json=None, sparse=None, progress=False, workers=1):
    """Check a data set (layout 'davis', 'youtube' or 'generic'); returns the problems found.

    Each problem is one line '<file>: <what is wrong>'; an empty list means no problem.
    split_json: two-frame split JSON; sparse: sparse label folder (<video>/<frame>.png), both
    checked against the layout's training frames. Unusable arguments (missing root, split
    file or sparse folder, unknown layout) raise UserError.
    """
    return _run(root, layout, split_json, sparse, progress, workers).problems


def main(argv):
    p = argparse.ArgumentParser(
        description='Check a VOS data set before a long run; lists every problem found.')
    p.add_argument('--root', required=True,
                   help='data set folder (davis: the DAVIS folder; youtube: the YouTube folder; '
                        'generic: the folder holding JPEGImages and Annotations)')
    p.add_argument('--layout', required=True, choices=LAYOUTS)
    p.add_argument('--split_json', default=None,
                   help='two-frame split JSON {video: ["00030.jpg", "00065.jpg"]} to check')
    p.add_argument('--sparse', default=None,
                   help='sparse label folder (<video>/<labeled frame>.png) to check')
    p.add_argument('--max_problems', type=int, default=None,
                   help='print at most N problems (all are still counted)')
    p.add_argument('--workers', type=int, default=min(4, os.cpu_count() or 1),
                   help='threads decoding images')
    p.add_argument('--debug', action='store_true', help='full tracebacks on errors')
    a = p.parse_args(argv)
    if a.max_problems is not None and a.max_problems < 0:
        p.error('--max_problems must be >= 0')
    if a.workers < 1:
        p.error('--workers must be >= 1')
    ck = _run(a.root, a.layout, a.split_json, a.sparse, progress=True, workers=a.workers)
    shown = ck.problems if a.max_problems is None else ck.problems[:a.max_problems]
    for line in shown:
        print(line)
    if len(shown) < len(ck.problems):
        print(f'... {len(ck.problems) - len(shown)} more problems not shown '
              f'(--max_problems {a.max_problems})')
    counts = (f'{ck.tasks} video checks, {ck.count("frame")} frames, {ck.count("mask")} masks '
              f'checked under {a.root} ({a.layout} layout)')
    n = len(ck.problems)
    if n:
        print(f'{n} problem{"s" if n != 1 else ""} found: {counts}')
        return 1
    print(f'no problems found: {counts}')
    return 0


if __name__ == '__main__':
    sys.exit(run_main(main))
