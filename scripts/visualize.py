"""Look at segmentations: masks over frames (DAVIS colours, alpha blend, object contours).

    python -m scripts.visualize --frames DIR --masks DIR [--masks DIR2 ...] --out FILE
        [--labels NAME ...] [--videos V ...] [--format mp4|gif] [--columns 6] [--height H]
        [--alpha 0.5] [--contour 1] [--fps 10] [--every 1]

--frames is a folder of video folders (<video>/<frame>.jpg, e.g. JPEGImages/480p) or one
video's frame folder; each --masks the matching folder of <video>/<frame>.png (ground truth,
a method's output, a pseudo-label bank), one row or panel per --masks, named by --labels
(default: the folder names). Videos: --videos, or every video that all --masks folders hold.

--out FILE.png   a contact sheet: for each video one row per --masks, --columns frames evenly
                 spread over the video, always including every frame of a sparse --masks
                 folder (one with fewer masks than --columns, e.g. the two labeled frames);
                 row labels on the left, frame names on top.
--out FILE.mp4 / FILE.gif   one video (exactly one selected): every --every-th frame, the
                 --masks side by side, each under its label.
--out DIR --format mp4|gif   one file per video, DIR/<video>.mp4.
A frame without a mask in some folder is shown without overlay there. Masks must have their
frame's size.
"""
import argparse
import os
import sys

import numpy as np

from util import overlay as ov
from util.errors import UserError, run_main
from util.files import ensure_writable_dir
from util.image_io import read_frame, read_mask
from util.outputs import check_apart, check_file_output, check_folder_output
from util.layout import MASK_EXT, check_unique, image_files, list_videos, stem

SHEET_HEIGHT = 240            # default row height of a contact sheet


def _frames_in(folder):
    """Time-sorted frame names of folder ([] when it cannot be listed)."""
    try:
        return image_files(folder)
    except OSError:
        return []


def _videos_in(folder):
    try:
        return list_videos(folder)
    except OSError:
        return []


def resolve(frames, masks, videos=None):
    """[(video, frame folder, [mask folder per --masks])] for the videos to draw."""
    frames = str(frames)
    if not os.path.isdir(frames):
        raise UserError(f'{frames}: frames folder not found')
    for m in masks:
        if not os.path.isdir(m):
            raise UserError(f'{m}: mask folder not found')
    if _frames_in(frames):                                 # one video's folder
        name = os.path.basename(os.path.normpath(frames))
        if videos and list(videos) != [name]:
            raise UserError(f'{frames}: holds the frames of one video ({name!r}); --videos '
                            f'{" ".join(videos)} does not match it')
        return [(name, frames, [str(m) for m in masks])]
    have = _videos_in(frames)
    if not have:
        raise UserError(f'{frames}: holds neither frames nor video folders')
    if videos:
        for v in videos:
            if v not in have:
                raise UserError(f'{os.path.join(frames, v)}: video folder not found')
        chosen = list(videos)
    else:
        common = [set(_videos_in(m)) for m in masks]
        chosen = [v for v in have if all(v in c for c in common)]
        if not chosen:
            raise UserError(f'no video of {frames} has a folder in every --masks folder')
    return [(v, os.path.join(frames, v), [os.path.join(str(m), v) for m in masks])
            for v in chosen]


def _frame_names(video, frame_dir):
    names = _frames_in(frame_dir)
    if not names:
        raise UserError(f'{frame_dir}: no frames (video {video!r})')
    return check_unique(frame_dir, names)


def _panel(frame_dir, mask_dirs, name, args, height):
    """The overlays of one frame, one per mask folder: uint8 [height, w, 3] each."""
    frame = read_frame(os.path.join(frame_dir, name))
    out = []
    for d in mask_dirs:
        path = os.path.join(d, stem(name) + MASK_EXT)
        mask = read_mask(path) if os.path.isfile(path) else None
        if mask is not None and mask.shape != frame.shape[:2]:
            raise UserError(f'{path}: mask size {mask.shape[1]}x{mask.shape[0]} differs from its '
                            f'frame {os.path.join(frame_dir, name)} '
                            f'({frame.shape[1]}x{frame.shape[0]})')
        img = ov.overlay(frame, mask, args.alpha, args.contour)
        out.append(ov.resize_to_height(img, height))
    return out


def pick_columns(names, n, keep):
    """n of the time-sorted frame names: every name in `keep` (evenly thinned if there are more
    than n), the other columns evenly spread over the remaining frames; in time order."""
    def spread(seq, k):
        return [seq[i] for i in np.linspace(0, len(seq) - 1, k).round().astype(int)] if k else []
    keep = set(keep)
    kept = [nm for nm in names if nm in keep]
    if len(kept) >= n:
        return spread(kept, n)
    rest = [nm for nm in names if nm not in keep]
    chosen = keep | set(spread(rest, min(n - len(kept), len(rest))))
    return [nm for nm in names if nm in chosen]


def _sparse_frames(names, mask_dirs, n):
    """The frames of the mask folders that hold masks for fewer than n of `names`."""
    out = set()
    for d in mask_dirs:
        held = [nm for nm in names if os.path.isfile(os.path.join(d, stem(nm) + MASK_EXT))]
        if 0 < len(held) < n:
            out.update(held)
    return out


def contact_sheet(items, labels, args):
    """uint8 image: per video one row per mask folder, --columns frames."""
    height = SHEET_HEIGHT if args.height is None else args.height
    rows, row_labels, col_labels = [], [], None
    for video, frame_dir, mask_dirs in items:
        names = _frame_names(video, frame_dir)
        n = min(args.columns, len(names))
        picks = pick_columns(names, n, _sparse_frames(names, mask_dirs, n))
        panels = [_panel(frame_dir, mask_dirs, nm, args, height) for nm in picks]  # [col][row]
        if col_labels is None:
            col_labels = [stem(nm) for nm in picks]
        for r, label in enumerate(labels):
            rows.append([panels[c][r] for c in range(n)])
            row_labels.append(label if len(items) == 1 else f'{video}: {label}')
    return ov.grid(rows, row_labels, col_labels=col_labels if len(items) == 1 else None)


def video_frames(item, labels, args):
    """The frames of one output video: the panels side by side under their labels."""
    video, frame_dir, mask_dirs = item
    names = _frame_names(video, frame_dir)[::args.every]
    height = 0 if args.height is None else args.height
    out = []
    for nm in names:
        panels = _panel(frame_dir, mask_dirs, nm, args, height)
        th = min(32, max(12, panels[0].shape[0] // 10))
        cols = [np.concatenate([ov.label_image(t, th + 6, p.shape[1], text_height=th), p], 0)
                for t, p in zip(labels, panels)]
        out.append(ov.hstack_padded(cols, gap=2))
    return out


def main(argv):
    p = argparse.ArgumentParser(
        description='Masks over frames (DAVIS colours, alpha blend, contours): a contact '
                    'sheet PNG, or an MP4 / GIF per video.')
    p.add_argument('--frames', required=True,
                   help='folder of <video>/<frame>.jpg (or one video\'s frame folder)')
    p.add_argument('--masks', required=True, action='append',
                   help='folder of <video>/<frame>.png; repeat for more rows / panels')
    p.add_argument('--labels', nargs='+', default=None, help='one name per --masks')
    p.add_argument('--videos', nargs='+', default=None, help='videos to draw (default: all)')
    p.add_argument('--out', required=True,
                   help='FILE.png (contact sheet), FILE.mp4 / FILE.gif (one video), or a folder '
                        'with --format')
    p.add_argument('--format', choices=('mp4', 'gif'), default=None,
                   help='with --out DIR: one DIR/<video>.<format> per video')
    p.add_argument('--columns', type=int, default=6, help='contact sheet: frames per row')
    p.add_argument('--height', type=int, default=None,
                   help=f'panel height in pixels (default: {SHEET_HEIGHT} for a sheet, as '
                        'stored for videos)')
    p.add_argument('--alpha', type=float, default=0.5, help='mask opacity')
    p.add_argument('--contour', type=int, default=1, help='contour width in pixels (0: none)')
    p.add_argument('--fps', type=float, default=10.0, help='video frame rate')
    p.add_argument('--every', type=int, default=1, help='videos: every N-th frame')
    p.add_argument('--debug', action='store_true', help='full tracebacks on errors')
    a = p.parse_args(argv)
    if a.labels is not None and len(a.labels) != len(a.masks):
        p.error(f'--labels gives {len(a.labels)} names for {len(a.masks)} --masks folders')
    if a.columns < 1 or a.every < 1 or a.fps <= 0 or a.contour < 0 or not 0 <= a.alpha <= 1:
        p.error('need --columns, --every >= 1, --fps > 0, --contour >= 0, 0 <= --alpha <= 1')
    labels = a.labels or [os.path.basename(os.path.normpath(m)) for m in a.masks]
    ext = os.path.splitext(a.out)[1].lower()
    inputs = [('frames folder', a.frames)] + [('mask folder', m) for m in a.masks]
    if a.format is None:
        check_file_output(a.out, 'output file (--out)', inputs)
    else:
        check_folder_output(a.out, 'output folder (--out)')
        check_apart([('output folder (--out)', a.out)], inputs)
    items = resolve(a.frames, a.masks, a.videos)
    written = []
    if a.format is None and ext == '.png':
        ov.write_png(a.out, contact_sheet(items, labels, a))
        written.append(a.out)
    elif a.format is None and ext in ov.VIDEO_EXTS:
        if len(items) != 1:
            raise UserError(f'{a.out}: {len(items)} videos selected for one video file; pick one '
                            'with --videos, or give --out DIR --format mp4|gif')
        ov.write_video(a.out, video_frames(items[0], labels, a), a.fps)
        written.append(a.out)
    elif a.format is not None and not ext:
        ensure_writable_dir(a.out, keep=True)
        for item in items:
            path = os.path.join(a.out, f'{item[0]}.{a.format}')
            ov.write_video(path, video_frames(item, labels, a), a.fps)
            written.append(path)
    else:
        raise UserError(f'{a.out}: --out must end in .png, .mp4 or .gif, or be a folder '
                        'given with --format mp4|gif')
    for path in written:
        print(path)
    return 0


if __name__ == '__main__':
    sys.exit(run_main(main))
