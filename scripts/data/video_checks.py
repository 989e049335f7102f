"""Decoding frames and masks, and the checks of one video folder (scripts.data.check_dataset)."""
import os
from dataclasses import dataclass

import numpy as np
from PIL import Image

from util.errors import UserError
from util.image_io import DAVIS_PALETTE, frame_problem, mask_problem, read_mask
from util.layout import (FRAME_EXTS, MASK_EXT, NOT_A_FILE, duplicate_stems, frame_key,
                         image_entries, list_videos)


@dataclass(frozen=True)
class _Img:
    """What decoding one image told us (small: no pixel data is kept)."""
    size: tuple = None       # (W, H) when decodable
    error: str = None        # why it could not be decoded or used
    mode_note: str = None    # masks: why the mode is not 8-bit palette / grayscale
    ids: tuple = None        # masks: nonzero ids present; None when not readable as ids


def _ids(arr):
    return tuple(int(x) for x in np.unique(arr) if x != 0)


def _decode_frame(path):
    try:
        with Image.open(path) as img:
            img.load()
            return _Img(size=img.size, error=frame_problem(img))
    except Exception as e:  # PIL raises many types for truncated / corrupt files
        return _Img(error=f'cannot decode image ({e})')


def _rgb_note(path, mode, ids):
    """Describe an RGB(A) mask that read_mask accepted: how its colours map to DAVIS ids."""
    with Image.open(path) as img:
        colours = np.unique(np.asarray(img.convert('RGB')).reshape(-1, 3), axis=0)
    ambiguous, white = [], False
    for c in colours.tolist():
        hits = int((DAVIS_PALETTE == np.asarray(c, np.uint8)).all(1).sum())
        if hits > 1:
            ambiguous.append(tuple(c))
        elif hits == 0 and tuple(c) == (255, 255, 255):
            white = True
    base = f'{mode} mask, not an 8-bit palette/grayscale PNG'
    if ambiguous:
        return (f'{base}; colour(s) {ambiguous} match several DAVIS palette entries, so the '
                'ids are ambiguous; re-save it as a palette PNG')
    extra = ' (black/white: white read as object 1)' if white else ''
    return (f'{base}; its colours map unambiguously to DAVIS palette ids '
            f'{[0] + list(ids)}{extra}; re-save it as a palette PNG')


def _decode_mask(path):
    try:
        with Image.open(path) as img:
            img.load()
            size, mode = img.size, img.mode
            problem = mask_problem(img)
            arr = np.asarray(img) if mode in ('P', 'L') else None
    except Exception as e:
        return _Img(error=f'cannot decode mask ({e})')
    if problem:
        return _Img(size=size, error=problem)
    if arr is not None:
        return _Img(size=size, ids=_ids(arr))
    base = f'{mode} mask, not an 8-bit palette/grayscale PNG'
    try:
        ids = _ids(read_mask(path))   # the loaders' own reading of odd modes
    except UserError as e:
        detail = str(e)
        detail = detail[len(path) + 2:] if detail.startswith(f'{path}: ') else detail
        if mode in ('RGB', 'RGBA'):
            note = f'{base}; its colours do not map to the DAVIS palette ({detail})'
        else:
            note = f'{base}; the loaders cannot read it ({detail})'
        return _Img(size=size, mode_note=note)
    if mode in ('RGB', 'RGBA'):
        return _Img(size=size, ids=ids, mode_note=_rgb_note(path, mode, ids))
    return _Img(size=size, ids=ids,
                mode_note=f'{base}; read as ids {[0] + list(ids)}; re-save it as a palette PNG')


def image_names(ck, folder, exts):
    """Image file names in folder in time order (hidden / temporary files skipped); entries
    of an image name that are not regular files are reported."""
    names, bad = image_entries(folder, exts)
    for path, problem in bad:
        ck.add(path, f'{problem}; {NOT_A_FILE}')
    return names


def _first(stems):
    return min(stems, key=frame_key)


def subdirs(folder, ck=None):
    if not os.path.isdir(folder):
        return []
    try:
        return list_videos(folder)
    except UserError as e:
        if ck is None:
            raise
        ck.add_line(str(e))
        return [d for d in os.listdir(folder) if not d.startswith('.')
                and os.path.isdir(os.path.join(folder, d))]


def size_text(size):
    return f'{size[0]}x{size[1]}'


class Checker:
    """Collects problems (deduplicated, in order) and caches what each decoded file gave."""

    def __init__(self, pool=None):
        self.pool = pool
        self.problems, self._seen = [], set()
        self._cache = {}                     # (kind, path) -> _Img
        self.tasks = 0                       # per-video checks run

    def add(self, path, msg):
        self.add_line(f'{path}: {msg}')

    def add_line(self, line):
        if line not in self._seen:
            self._seen.add(line)
            self.problems.append(line)

    def count(self, kind):
        return sum(1 for k, _ in self._cache if k == kind)

    def _decode(self, kind, fn, paths):
        todo = [p for p in dict.fromkeys(paths) if (kind, p) not in self._cache]
        if self.pool is not None and len(todo) > 1:
            results = list(self.pool.map(fn, todo))
        else:
            results = [fn(p) for p in todo]
        for p, r in zip(todo, results):
            self._cache[kind, p] = r
        infos = [self._cache[kind, p] for p in paths]
        for p, info in zip(paths, infos):
            if info.error:
                self.add(p, info.error)
            if info.mode_note:
                self.add(p, info.mode_note)
        return infos

    def frames(self, paths):
        """Decode frames (cached); report the undecodable ones. Returns [_Img]."""
        return self._decode('frame', _decode_frame, list(paths))

    def masks(self, paths):
        """Decode masks (cached); report undecodable ones and odd modes. Returns [_Img]."""
        return self._decode('mask', _decode_mask, list(paths))

    def size_match(self, mask_path, minfo, frame_path, finfo):
        if minfo.size and finfo.size and minfo.size != finfo.size:
            self.add(mask_path, f'mask size {size_text(minfo.size)} differs from its frame '
                                f'{os.path.basename(frame_path)} ({size_text(finfo.size)})')


def check_video(ck, frame_dir, mask_dir, dense=False, label=None, why='',
                 need_masks=True):
    """Check one video's frames and (if mask_dir) masks.

    dense: every frame must have a mask. label: which masks must hold an object:
    'first_frame' (the first frame's mask must exist and be non-empty), 'first_mask',
    'all_masks', 'any' (at least one mask non-empty), or None. why: appended to the message
    of a missing folder (e.g. which list names the video).
    Returns ({frame stem: frame name}, {mask stem: (path, _Img)}).
    """
    frames = {}
    if not os.path.isdir(frame_dir):
        if mask_dir is not None and need_masks and not os.path.isdir(mask_dir):
            ck.add(frame_dir, 'frame folder missing' + why + '; its annotation folder too')
            return frames, {}
        ck.add(frame_dir, 'frame folder missing' + why)
    else:
        names = image_names(ck, frame_dir, FRAME_EXTS)
        if not names:
            ck.add(frame_dir, 'frame folder holds no frames (.jpg/.png)' + why)
        for s, ns in duplicate_stems(names):
            ck.add(os.path.join(frame_dir, ns[0]), f'frame {s} has {len(ns)} files '
                                                   f'({", ".join(ns)}); keep one per frame')
        paths = [os.path.join(frame_dir, n) for n in names]
        infos = ck.frames(paths)
        ref = next(((p, i) for p, i in zip(paths, infos) if i.size), None)
        for p, i in zip(paths, infos):
            if ref and i.size and i.size != ref[1].size:
                ck.add(p, f'frame size {size_text(i.size)} differs from '
                          f'{os.path.basename(ref[0])} ({size_text(ref[1].size)}) '
                          'of the same video')
        frames = {os.path.splitext(n)[0]: n for n in names}
    masks = {}
    if mask_dir is None:
        return frames, masks
    if not os.path.isdir(mask_dir):
        if need_masks:
            ck.add(mask_dir, 'annotation folder missing' + why)
        return frames, masks
    for n in image_names(ck, mask_dir, ('.jpg', '.jpeg', '.bmp', '.gif', '.tif', '.tiff', '.webp')):
        ck.add(os.path.join(mask_dir, n), 'mask is not a PNG (the loaders read <frame>.png)')
    names = image_names(ck, mask_dir, (MASK_EXT,))
    if not names and (dense or label):
        ck.add(mask_dir, 'annotation folder holds no PNG masks')
    paths = [os.path.join(mask_dir, n) for n in names]
    for p, info in zip(paths, ck.masks(paths)):
        stem = os.path.splitext(os.path.basename(p))[0]
        masks[stem] = (p, info)
        if not os.path.isdir(frame_dir):
            continue
        if stem not in frames:
            ck.add(p, f'mask without a matching frame ({stem}.jpg not in {frame_dir})')
            continue
        fpath = os.path.join(frame_dir, frames[stem])
        ck.size_match(p, info, fpath, ck.frames([fpath])[0])
    if dense:
        for stem in sorted(set(frames) - set(masks)):
            ck.add(os.path.join(mask_dir, stem + '.png'),
                   f'missing: frame {frames[stem]} has no mask (every frame must be labeled)')
    if label == 'first_frame' and frames:
        first = _first(frames)
        if first not in masks:
            ck.add(os.path.join(mask_dir, first + '.png'),
                   f'missing: the first frame {frames[first]} must be labeled')
        elif masks[first][1].ids == ():
            ck.add(masks[first][0], 'first-frame label has no object (all zero)')
    elif label == 'first_mask' and masks:
        p, info = masks[_first(masks)]
        if info.ids == ():
            ck.add(p, 'first label of the video has no object (all zero)')
    elif label == 'all_masks':
        for p, info in masks.values():
            if info.ids == ():
                ck.add(p, 'label has no object (all zero); an annotated frame must show the '
                          'objects that first appear on it')
    elif label == 'any' and masks:
        infos = [i for _, i in masks.values()]
        if all(i.ids == () for i in infos):
            ck.add(mask_dir, 'no mask of this video holds any object (all zero)')
    return frames, masks
