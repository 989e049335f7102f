"""The merge of the four intermediate passes into one pseudo-label bank (docs/method.md).

Per video with labeled frames a < b (positions in the time-sorted frame list):
  before a            <- rightsecgt (propagated backward from a alone)
  a < i < b           <- left  when i - a <= floor((b - a - 1) / 2)   (forward from a)
                         right otherwise                                (backward from b)
  after b             <- leftsecgt  (propagated forward from b alone)
  a, b                <- the true labels of the sparse label folder
A video with one labeled frame a: before a <- rightsecgt, after a <- leftsecgt.

The bank is written in the original's layout, `<out>/Annotations/<video>/<frame>.png`
(util.layout.bank_output). Everything is validated before anything is written (every PNG taken
is decoded and checked: its video's frame size, the label ids of its sparse labels); each video
is written into `<out>/Annotations/.tmp_<video>` and renamed into place, so a killed merge
never leaves a half video.
Output PNGs are byte copies of their sources (palette kept).

The command is phase2_scripts/merge_left_right.py.
"""
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from util.errors import UserError
from util.files import CurrentStderr, ensure_writable_dir, publish_folder
from util.image_io import read_mask
from util.layout import (bank_labels, bank_output, list_frames, list_masks, list_videos,
                          sort_frames, sparse_label_frames, stem)
from util.outputs import OutputLock, check_apart

PASS_NAMES = ('left', 'leftsecgt', 'right', 'rightsecgt')
SOURCE_NAMES = ('gt',) + PASS_NAMES


class MissingFrame(UserError):
    """A source (pass or gt) lacks a frame it must provide."""

    def __init__(self, msg, source, frame):
        super().__init__(msg)
        self.source = source
        self.frame = frame


def source_plan(n, labeled_idx):
    """Source name for each of n frame positions given the sorted labeled positions (1 or 2)."""
    if len(labeled_idx) not in (1, 2):
        raise ValueError(f'expected 1 or 2 labeled frames, got {len(labeled_idx)}')
    a = labeled_idx[0]
    b = labeled_idx[-1]
    half = (b - a - 1) // 2          # last offset from a that takes the forward (left) pass
    plan = []
    for i in range(n):
        if i in labeled_idx:
            plan.append('gt')
        elif i < a:
            plan.append('rightsecgt')
        elif i > b:
            plan.append('leftsecgt')
        else:                        # a < i < b, only with two labeled frames
            plan.append('left' if i - a <= half else 'right')
    return plan


def merge_video(frames, labeled, passes, video=''):
    """Plan one video's merge: which file each frame's pseudo label is copied from.

    frames: frame names (stems, any order; sorted here by time).
    labeled: the 1 or 2 labeled frame names (must be in frames).
    passes: {source: {frame: path}} with sources 'gt', 'left', 'leftsecgt', 'right',
        'rightsecgt'; a frame missing from a source that must provide it is an error.
    Returns {frame: (source, path)} in time order. Pure: looks only at the given dicts.
    """
    frames = sort_frames(set(frames))
    labeled = sort_frames(set(labeled))
    where = f'video {video}: ' if video else ''
    if len(labeled) not in (1, 2):
        raise UserError(f'{where}expected 1 or 2 labeled frames, got {len(labeled)}')
    pos = {f: i for i, f in enumerate(frames)}
    for f in labeled:
        if f not in pos:
            raise UserError(f'{where}labeled frame {f} is not among the video frames')
    plan = source_plan(len(frames), [pos[f] for f in labeled])
    out = {}
    for f, src in zip(frames, plan):
        path = passes.get(src, {}).get(f)
        if path is None:
            raise MissingFrame(f'pass {src}: {where}missing frame file {f}.png', src, f)
        out[f] = (src, path)
    return out


def resolve_pass_dir(path, name):
    """A pass output folder, or its Annotations/ subfolder when it has one (bank_labels)."""
    path = Path(bank_labels(path))
    if not path.is_dir():
        raise UserError(f'{path}: {name} pass folder not found')
    return path


def list_pngs(folder):
    """{frame stem: path} of the PNGs in a folder ({} when the folder is missing)."""
    if not folder.is_dir():
        return {}
    return {stem(n): str(folder / n) for n in list_masks(str(folder))}


def plan_video(video, gt_dir, pass_dirs, frames_dir):
    """Read one video's folders and return its merge plan (see merge_video): every frame of
    <frames_dir>/<video> must come from the pass (or label) the rule names."""
    gt_files = list_pngs(gt_dir / video)
    if len(gt_files) not in (1, 2):
        raise UserError(f'{gt_dir / video}: expected 1 or 2 labeled PNGs, found {len(gt_files)}')
    sources = {'gt': gt_files}
    for name, d in pass_dirs.items():
        sources[name] = list_pngs(d / video)
    frames = [stem(n) for n in list_frames(str(Path(frames_dir) / video),
                                           'frames folder of this video')]
    missing = sort_frames(set(gt_files) - set(frames))
    if missing:
        raise UserError(f'{gt_dir / video / (missing[0] + ".png")}: labeled frame has no '
                        f'image in {Path(frames_dir) / video}')
    try:
        return merge_video(frames, list(gt_files), sources, video=video)
    except MissingFrame as e:               # name the full expected path
        root = gt_dir if e.source == 'gt' else pass_dirs[e.source]
        raise UserError(f'pass {e.source}: video {video}: missing frame file '
                        f'{root / video / (e.frame + ".png")}') from None


def check_plan(video, plan):
    """Decode every PNG the plan takes: of its video's frame size (its sparse labels'), holding
    only the label ids of its sparse labels (and 0). UserError naming the first PNG that is
    not, so that the bank never publishes a truncated, foreign or wrong-size mask."""
    masks = {path: (src, read_mask(path)) for src, path in sorted(
        plan.values(), key=lambda sp: sp[0] != 'gt')}                 # the labels first
    ref, size = next((p, m.shape) for p, (src, m) in masks.items() if src == 'gt')
    for path, (src, mask) in masks.items():
        if mask.shape != size:
            raise UserError(f'{path}: mask size {mask.shape[1]}x{mask.shape[0]} differs from the '
                            f'frames of video {video} ({size[1]}x{size[0]}, as its label {ref}); '
                            'the bank takes it as is, so nothing was merged')
    ids = {0} | {int(i) for src, m in masks.values() if src == 'gt' for i in np.unique(m)}
    for path, (src, mask) in masks.items():
        extra = sorted(set(np.unique(mask).tolist()) - ids)
        if extra:
            raise UserError(f'{path}: label id {extra[0]} is not an object of the sparse labels '
                            f'of video {video} ({", ".join(map(str, sorted(ids)))}); nothing was '
                            'merged')


def write_video(out, video, plan):
    """Copy one video's planned files into <out>/<video> atomically (util.files.publish_folder:
    neither a kill nor a crash leaves a video folder with truncated PNGs in the bank)."""
    def fill(tmp):
        for frame, (_, src) in plan.items():
            shutil.copyfile(src, tmp / f'{frame}.png')
    publish_folder(out / video, fill)


def merge(gt_dir, left, leftsecgt, right, rightsecgt, out, frames_dir=None, videos=None,
          workers=4, progress=True):
    """Merge the four pass trees into <out>/Annotations/<video>/<frame>.png; return a summary
    dict ('out': that Annotations folder).

    All videos are planned and checked first; nothing is written if any check fails.
    frames_dir: the JPEGImages folder of the videos (default: the one beside the sparse
    label folder at its usual place, util.layout.sparse_label_frames).
    """
    gt_dir = Path(gt_dir)
    if not gt_dir.is_dir():
        raise UserError(f'{gt_dir}: sparse label folder not found')
    if frames_dir is None:
        frames_dir = sparse_label_frames(gt_dir)
        if frames_dir is None:
            raise UserError(f'{gt_dir}: cannot tell where the frames of these videos are; give '
                            '--frames_dir (their JPEGImages folder) so that every frame of a '
                            'video is in the bank')
    elif not os.path.isdir(frames_dir):
        raise UserError(f'{frames_dir}: frames folder (--frames_dir) not found')
    pass_dirs = {name: resolve_pass_dir(p, name) for name, p in
                 zip(PASS_NAMES, (left, leftsecgt, right, rightsecgt))}
    check_apart([('output folder (--out)', out)],
                [('sparse label folder', gt_dir), ('frames folder', frames_dir)]
                + [(f'{name} pass folder', d) for name, d in pass_dirs.items()])
    all_videos = list_videos(str(gt_dir))
    if videos:
        unknown = [v for v in videos if v not in all_videos]
        if unknown:
            raise UserError(f'{gt_dir}: no sparse labels for video {unknown[0]}')
        all_videos = [v for v in all_videos if v in set(videos)]
    if not all_videos:
        raise UserError(f'{gt_dir}: no video folders to merge')

    plans = {v: plan_video(v, gt_dir, pass_dirs, frames_dir) for v in all_videos}
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:     # PIL decodes off the GIL
        list(pool.map(lambda v: check_plan(v, plans[v]), all_videos))

    out = Path(ensure_writable_dir(out, 'output folder (--out)'))
    labels = Path(bank_output(out))
    try:
        labels.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f'{labels}: cannot create output folder ({e.strerror})') from e
    items = list(plans.items())
    with OutputLock(labels, 'output folder (--out)'), \
            ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        jobs = pool.map(lambda kv: write_video(labels, *kv), items)
        if progress:
            import progressbar
            jobs = progressbar.ProgressBar(max_value=len(items), fd=CurrentStderr())(jobs)
        for _ in jobs:
            pass

    counts = {s: 0 for s in SOURCE_NAMES}
    for plan in plans.values():
        for src, _ in plan.values():
            counts[src] += 1
    return {'videos': len(plans), 'frames': sum(counts.values()), 'sources': counts,
            'out': str(labels)}
