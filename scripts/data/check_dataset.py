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
from dataclasses import dataclass
from functools import partial

import numpy as np
from PIL import Image

from util.errors import UserError, run_main
from util.files import CurrentStderr, read_json
from util.image_io import DAVIS_PALETTE, frame_problem, mask_problem, read_mask
from util.layout import (FRAME_EXTS, MASK_EXT, NOT_A_FILE, davis_dirs, davis_imageset,
                         davis_trainval, duplicate_stems, frame_key, generic_dirs, image_entries,
                         list_videos, name_problem, sort_frames, youtube_all_frames,
                         youtube_dirs, youtube_meta)
from util.two_shot_split import load_split

LAYOUTS = ('davis', 'youtube', 'generic')

# DAVIS parts: (path under root, ImageSets year, required lists, optional lists, required part,
#               dense labels)
DAVIS_PARTS = (
    (('2017', 'trainval'), '2017', ('train', 'val'), (), True, True),
    (('2017', 'test-dev'), '2017', ('test-dev',), (), False, False),
    (('2016',), '2016', ('val',), ('train',), False, True),
)


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


def _images(ck, folder, exts):
    """Image file names in folder in time order (hidden / temporary files skipped); entries
    of an image name that are not regular files are reported."""
    names, bad = image_entries(folder, exts)
    for path, problem in bad:
        ck.add(path, f'{problem}; {NOT_A_FILE}')
    return names


def _first(stems):
    return min(stems, key=frame_key)


def _subdirs(folder, ck=None):
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


def _wh(size):
    return f'{size[0]}x{size[1]}'


class _Checker:
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
            self.add(mask_path, f'mask size {_wh(minfo.size)} differs from its frame '
                                f'{os.path.basename(frame_path)} ({_wh(finfo.size)})')


# ----------------------------------------------------------------------------- one video

def _check_video(ck, frame_dir, mask_dir, dense=False, label=None, why='',
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
        names = _images(ck, frame_dir, FRAME_EXTS)
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
                ck.add(p, f'frame size {_wh(i.size)} differs from '
                          f'{os.path.basename(ref[0])} ({_wh(ref[1].size)}) of the same video')
        frames = {os.path.splitext(n)[0]: n for n in names}
    masks = {}
    if mask_dir is None:
        return frames, masks
    if not os.path.isdir(mask_dir):
        if need_masks:
            ck.add(mask_dir, 'annotation folder missing' + why)
        return frames, masks
    for n in _images(ck, mask_dir, ('.jpg', '.jpeg', '.bmp', '.gif', '.tif', '.tiff', '.webp')):
        ck.add(os.path.join(mask_dir, n), 'mask is not a PNG (the loaders read <frame>.png)')
    names = _images(ck, mask_dir, (MASK_EXT,))
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


def _read_list(ck, path):
    """Video names of an ImageSets list, or None (reported) when unreadable."""
    try:
        with open(path) as f:
            lines = [ln.strip() for ln in f]
    except (OSError, UnicodeDecodeError) as e:
        ck.add(path, f'cannot read video list ({e})')
        return None
    videos = []
    for i, ln in enumerate(lines, 1):
        if not ln:
            continue
        if ' ' in ln or name_problem(ln):
            ck.add(path, f'line {i}: {ln!r} is not a video name '
                         f'({name_problem(ln) or "holds a space"})')
            continue
        videos.append(ln)
    if not videos:
        ck.add(path, 'lists no videos')
    return videos


# ----------------------------------------------------------------------------- layouts

def _davis_tasks(ck, root):
    tasks = []
    for parts, year, required, optional, part_required, dense in DAVIS_PARTS:
        base = os.path.join(root, *parts)
        if not os.path.isdir(base):
            if part_required:
                ck.add(base, 'folder missing')
            continue
        jpg, ann = davis_dirs(base)
        for d in (jpg, ann):
            if not os.path.isdir(d):
                ck.add(d, 'folder missing')
        listed = {}                                  # video -> list file naming it
        for name in required + optional:
            lst = davis_imageset(base, year, name)
            if not os.path.isfile(lst):
                if name in required:
                    ck.add(lst, 'video list missing')
                continue
            for v in _read_list(ck, lst) or []:
                listed.setdefault(v, lst)
        videos = sorted(set(listed) | set(_subdirs(jpg, ck)) | set(_subdirs(ann, ck)))
        for v in videos:
            why = f' (video {v!r} listed in {listed[v]})' if v in listed else ''
            tasks.append((v, partial(_check_video, ck, os.path.join(jpg, v),
                                     os.path.join(ann, v), dense=dense, label='first_frame',
                                     why=why)))
    return tasks


def _load_meta(ck, path):
    """{video: {object id str: [frame stems]}} from a YouTube meta.json; None if unusable."""
    if not os.path.isfile(path):
        ck.add(path, 'meta.json missing')
        return None
    try:
        data = read_json(path, 'meta.json')
    except UserError as e:
        ck.add_line(str(e))
        return None
    if not isinstance(data, dict) or not isinstance(data.get('videos'), dict):
        ck.add(path, 'expected {"videos": {video: {"objects": {id: {"frames": [...]}}}}}')
        return None
    meta = {}
    for v, entry in data['videos'].items():
        if name_problem(v):
            ck.add(path, f'video name {v!r} {name_problem(v)}; names in lists are folder or '
                         'file names, never paths')
            continue
        objs = entry.get('objects') if isinstance(entry, dict) else None
        if not isinstance(objs, dict):
            ck.add(path, f'video {v!r}: no "objects" dict')
            continue
        meta[v] = {}
        for oid, o in objs.items():
            frames = o.get('frames') if isinstance(o, dict) else None
            if not str(oid).isdigit() or not 1 <= int(oid) <= 255:
                ck.add(path, f'video {v!r}: object id {oid!r} is not a number 1..255')
            elif not isinstance(frames, list) or not frames or \
                    not all(isinstance(x, str) for x in frames):
                ck.add(path, f'video {v!r}: object {oid}: "frames" must be a non-empty list of '
                             'frame names')
            else:
                meta[v][str(int(oid))] = sort_frames(os.path.splitext(x)[0] for x in frames)
        if not meta[v]:
            ck.add(path, f'video {v!r}: no objects')
    return meta


def _check_valid_video(ck, meta_path, meta, jpg, ann, v):
    """A YouTube valid video: frames, first-appearance masks, and agreement with meta.json."""
    why = f' (video {v!r} is in {meta_path})' if meta is not None and v in meta else ''
    frames, masks = _check_video(ck, os.path.join(jpg, v), os.path.join(ann, v),
                                 label='all_masks', why=why)
    if meta is None:
        return
    if v not in meta:
        if os.path.isdir(os.path.join(jpg, v)):
            ck.add(os.path.join(jpg, v), f'video not in {meta_path}')
        return
    objects = meta[v]
    for oid, fr in sorted(objects.items(), key=lambda kv: int(kv[0])):
        if frames:
            for f in fr:
                if f not in frames:
                    ck.add(meta_path, f'video {v!r} object {oid}: frame {f} has no image in '
                                      f'{os.path.join(jpg, v)}')
        first = fr[0]
        mpath = os.path.join(ann, v, first + '.png')
        if first not in masks:
            if os.path.isdir(os.path.join(ann, v)):
                ck.add(mpath, f'missing: {meta_path} says object {oid} first appears on frame '
                              f'{first}')
        elif masks[first][1].ids is not None and int(oid) not in masks[first][1].ids:
            ck.add(mpath, f'object {oid} absent, but {meta_path} says it first appears on '
                          f'this frame')
    for stem, (p, info) in sorted(masks.items(), key=lambda kv: frame_key(kv[0])):
        for i in info.ids or ():
            fr = objects.get(str(i))
            if fr is None:
                ck.add(p, f'object {i} is not listed for video {v!r} in {meta_path}')
            elif frame_key(stem) < frame_key(fr[0]):
                ck.add(p, f'object {i} appears on frame {stem}, but {meta_path} says it first '
                          f'appears on frame {fr[0]}')


def _check_all_frames_video(ck, all_jpg, valid_jpg, v):
    """all_frames/valid_all_frames: decodable, and holding every frame of valid/JPEGImages."""
    vdir, valid_dir = os.path.join(all_jpg, v), os.path.join(valid_jpg, v)
    frames, _ = _check_video(ck, vdir, None, why=f' (video {v!r} is in {valid_jpg})'
                             if os.path.isdir(valid_dir) else '')
    if not frames or not os.path.isdir(valid_dir):
        return
    for n in _images(ck, valid_dir, FRAME_EXTS):
        stem = os.path.splitext(n)[0]
        if stem not in frames:
            ck.add(os.path.join(vdir, n), f'missing: frame of {valid_dir} not in {vdir}')
            continue
        a, b = ck.frames([os.path.join(vdir, frames[stem]), os.path.join(valid_dir, n)])
        if a.size and b.size and a.size != b.size:
            ck.add(os.path.join(vdir, frames[stem]),
                   f'frame size {_wh(a.size)} differs from {os.path.join(valid_dir, n)} '
                   f'({_wh(b.size)})')


def _youtube_tasks(ck, root):
    tasks = []
    jpg, ann = youtube_dirs(root, 'train_480p')
    for d in (jpg, ann):
        if not os.path.isdir(d):
            ck.add(d, 'folder missing')
    for v in sorted(set(_subdirs(jpg, ck)) | set(_subdirs(ann, ck))):
        tasks.append((v, partial(_check_video, ck, os.path.join(jpg, v), os.path.join(ann, v),
                                 dense=True, label='any')))
    vjpg, vann = youtube_dirs(root, 'valid')
    for d in (vjpg, vann):
        if not os.path.isdir(d):
            ck.add(d, 'folder missing')
    meta_path = youtube_meta(root, 'valid')
    meta = _load_meta(ck, meta_path)
    valid_videos = sorted(set(_subdirs(vjpg, ck)) | set(_subdirs(vann, ck)) | set(meta or ()))
    for v in valid_videos:
        tasks.append((v, partial(_check_valid_video, ck, meta_path, meta, vjpg, vann, v)))
    all_jpg = youtube_all_frames(root, 'valid')
    if os.path.isdir(os.path.dirname(os.path.dirname(all_jpg))):       # all_frames/
        if not os.path.isdir(all_jpg):
            ck.add(all_jpg, 'folder missing')
        else:
            for v in sorted(set(_subdirs(all_jpg, ck)) | set(_subdirs(vjpg, ck))):
                tasks.append((v, partial(_check_all_frames_video, ck, all_jpg, vjpg, v)))
    return tasks


def _generic_tasks(ck, root):
    jpg, ann = generic_dirs(root)
    for d in (jpg, ann):
        if not os.path.isdir(d):
            ck.add(d, 'folder missing')
    return [(v, partial(_check_video, ck, os.path.join(jpg, v), os.path.join(ann, v),
                        label='first_mask'))
            for v in sorted(set(_subdirs(jpg, ck)) | set(_subdirs(ann, ck)))]


def _training_dirs(root, layout):
    """(frames folder, annotations folder) that a split JSON / sparse folder refer to."""
    if layout == 'davis':
        return davis_dirs(davis_trainval(os.path.join(root, '2017')))
    if layout == 'youtube':
        return youtube_dirs(root, 'train_480p')
    return generic_dirs(root)


# ----------------------------------------------------------------------------- split, sparse

def _check_split_video(ck, split_path, v, names, jpg, ann, sparse):
    vdir = os.path.join(jpg, v)
    if not os.path.isdir(vdir):
        ck.add(split_path, f'video {v!r} does not exist ({vdir} missing)')
        return
    present = [n for n in names if os.path.isfile(os.path.join(vdir, n))]
    for n in names:
        if n not in present:
            ck.add(split_path, f'video {v!r}: frame {n} does not exist in {vdir}')
    ck.frames([os.path.join(vdir, n) for n in present])
    names = present                              # a missing frame is reported once above
    stems = [os.path.splitext(n)[0] for n in names]
    if os.path.isdir(ann):
        for n, s in zip(names, stems):
            m = os.path.join(ann, v, s + '.png')
            if not os.path.isfile(m):
                ck.add(m, f'missing: {split_path} labels frame {n} of video {v!r}')
            elif ck.masks([m])[0].ids == ():
                ck.add(m, f'labeled frame in {split_path} has no object (all zero)')
    if sparse is not None:
        sdir = os.path.join(sparse, v)
        if not os.path.isdir(sdir):
            ck.add(sdir, f'missing: {split_path} labels video {v!r}')
            return
        for n, s in zip(names, stems):
            if not os.path.isfile(os.path.join(sdir, s + '.png')):
                ck.add(os.path.join(sdir, s + '.png'),
                       f'missing: {split_path} labels frame {n} of video {v!r}')


def _check_sparse_video(ck, sparse, v, jpg, split, split_path):
    sdir, vdir = os.path.join(sparse, v), os.path.join(jpg, v)
    names = _images(ck, sdir, (MASK_EXT,))
    if not names:
        ck.add(sdir, 'sparse label folder holds no PNG labels')
    has_frames = os.path.isdir(vdir)
    if not has_frames:
        ck.add(sdir, f'video {v!r} is not in the frames folder {jpg}')
    frames = ({os.path.splitext(n)[0]: n for n in _images(ck, vdir, FRAME_EXTS)}
              if has_frames else {})
    paths = [os.path.join(sdir, n) for n in names]
    for p, info in zip(paths, ck.masks(paths)):
        stem = os.path.splitext(os.path.basename(p))[0]
        if has_frames and stem not in frames:
            ck.add(p, f'its frame does not exist ({stem}.jpg not in {vdir})')
        elif has_frames:
            fpath = os.path.join(vdir, frames[stem])
            ck.size_match(p, info, fpath, ck.frames([fpath])[0])
        if info.ids == ():
            ck.add(p, 'sparse label has no object (all zero); labeled frames must show an object')
        if split is not None and v in split and \
                stem not in {os.path.splitext(n)[0] for n in split[v]}:
            ck.add(p, f'not a labeled frame of video {v!r} in {split_path}')
    if split is not None and v not in split:
        ck.add(sdir, f'video {v!r} is not in {split_path}')


# ----------------------------------------------------------------------------- entry points

def _run(root, layout, split_json=None, sparse=None, progress=False, workers=1):
    """Check everything; returns the _Checker (problems + counts)."""
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
        ck = _Checker(pool)
        tasks = {'davis': _davis_tasks, 'youtube': _youtube_tasks,
                 'generic': _generic_tasks}[layout](ck, root)
        jpg, ann = _training_dirs(root, layout)
        split = None
        if split_json is not None:
            split_json = str(split_json)
            try:
                split = load_split(split_json)
            except UserError as e:
                ck.add_line(str(e))
            for v, names in sorted((split or {}).items()):
                tasks.append((v, partial(_check_split_video, ck, split_json, v, names, jpg, ann,
                                         None if sparse is None else str(sparse))))
        if sparse is not None:
            sparse = str(sparse)
            vids = _subdirs(sparse, ck)
            if not vids:
                ck.add(sparse, 'sparse label folder holds no video folders')
            for v in vids:
                tasks.append((v, partial(_check_sparse_video, ck, sparse, v, jpg, split,
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
