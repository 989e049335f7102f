"""The checks of each data set layout (DAVIS, YouTube, generic) and of a two-shot split JSON and
sparse label folder, as per-video tasks (scripts.data.check_dataset)."""
import os
from functools import partial

from util.errors import UserError
from util.files import read_json
from util.layout import (FRAME_EXTS, MASK_EXT, davis_dirs, davis_imageset, davis_trainval,
                         frame_key, generic_dirs, name_problem, sort_frames, youtube_all_frames,
                         youtube_dirs, youtube_meta)
from scripts.data.video_checks import check_video, image_names, size_text, subdirs

# DAVIS parts: (path under root, ImageSets year, required lists, optional lists, required part,
#               dense labels)
DAVIS_PARTS = (
    (('2017', 'trainval'), '2017', ('train', 'val'), (), True, True),
    (('2017', 'test-dev'), '2017', ('test-dev',), (), False, False),
    (('2016',), '2016', ('val',), ('train',), False, True),
)


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

def davis_tasks(ck, root):
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
        videos = sorted(set(listed) | set(subdirs(jpg, ck)) | set(subdirs(ann, ck)))
        for v in videos:
            why = f' (video {v!r} listed in {listed[v]})' if v in listed else ''
            tasks.append((v, partial(check_video, ck, os.path.join(jpg, v),
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
    frames, masks = check_video(ck, os.path.join(jpg, v), os.path.join(ann, v),
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
    frames, _ = check_video(ck, vdir, None, why=f' (video {v!r} is in {valid_jpg})'
                             if os.path.isdir(valid_dir) else '')
    if not frames or not os.path.isdir(valid_dir):
        return
    for n in image_names(ck, valid_dir, FRAME_EXTS):
        stem = os.path.splitext(n)[0]
        if stem not in frames:
            ck.add(os.path.join(vdir, n), f'missing: frame of {valid_dir} not in {vdir}')
            continue
        a, b = ck.frames([os.path.join(vdir, frames[stem]), os.path.join(valid_dir, n)])
        if a.size and b.size and a.size != b.size:
            ck.add(os.path.join(vdir, frames[stem]),
                   f'frame size {size_text(a.size)} differs from {os.path.join(valid_dir, n)} '
                   f'({size_text(b.size)})')


def youtube_tasks(ck, root):
    tasks = []
    jpg, ann = youtube_dirs(root, 'train_480p')
    for d in (jpg, ann):
        if not os.path.isdir(d):
            ck.add(d, 'folder missing')
    for v in sorted(set(subdirs(jpg, ck)) | set(subdirs(ann, ck))):
        tasks.append((v, partial(check_video, ck, os.path.join(jpg, v), os.path.join(ann, v),
                                 dense=True, label='any')))
    vjpg, vann = youtube_dirs(root, 'valid')
    for d in (vjpg, vann):
        if not os.path.isdir(d):
            ck.add(d, 'folder missing')
    meta_path = youtube_meta(root, 'valid')
    meta = _load_meta(ck, meta_path)
    valid_videos = sorted(set(subdirs(vjpg, ck)) | set(subdirs(vann, ck)) | set(meta or ()))
    for v in valid_videos:
        tasks.append((v, partial(_check_valid_video, ck, meta_path, meta, vjpg, vann, v)))
    all_jpg = youtube_all_frames(root, 'valid')
    if os.path.isdir(os.path.dirname(os.path.dirname(all_jpg))):       # all_frames/
        if not os.path.isdir(all_jpg):
            ck.add(all_jpg, 'folder missing')
        else:
            for v in sorted(set(subdirs(all_jpg, ck)) | set(subdirs(vjpg, ck))):
                tasks.append((v, partial(_check_all_frames_video, ck, all_jpg, vjpg, v)))
    return tasks


def generic_tasks(ck, root):
    jpg, ann = generic_dirs(root)
    for d in (jpg, ann):
        if not os.path.isdir(d):
            ck.add(d, 'folder missing')
    return [(v, partial(check_video, ck, os.path.join(jpg, v), os.path.join(ann, v),
                        label='first_mask'))
            for v in sorted(set(subdirs(jpg, ck)) | set(subdirs(ann, ck)))]


def training_dirs(root, layout):
    """(frames folder, annotations folder) that a split JSON / sparse folder refer to."""
    if layout == 'davis':
        return davis_dirs(davis_trainval(os.path.join(root, '2017')))
    if layout == 'youtube':
        return youtube_dirs(root, 'train_480p')
    return generic_dirs(root)


# ----------------------------------------------------------------------------- split, sparse

def check_split_video(ck, split_path, v, names, jpg, ann, sparse):
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


def check_sparse_video(ck, sparse, v, jpg, split, split_path):
    sdir, vdir = os.path.join(sparse, v), os.path.join(jpg, v)
    names = image_names(ck, sdir, (MASK_EXT,))
    if not names:
        ck.add(sdir, 'sparse label folder holds no PNG labels')
    has_frames = os.path.isdir(vdir)
    if not has_frames:
        ck.add(sdir, f'video {v!r} is not in the frames folder {jpg}')
    frames = ({os.path.splitext(n)[0]: n for n in image_names(ck, vdir, FRAME_EXTS)}
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
