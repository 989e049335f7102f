"""Deterministic synthetic VOS data in the on-disk layouts of docs/data.md.

Each video is drawn by scripts.data.synthetic_video.make_video from a numpy Generator seeded
per video; frames are JPEG at a fixed quality, masks palette PNGs: two runs with the same seed
write byte-identical trees.

The command `python -m scripts.data.synthetic` writes one data set.

Layouts written under DIR (see `generate` for the details):
  davis   DAVIS/2017/trainval, DAVIS/2017/test-dev, DAVIS/2016, DAVIS/2017/davis_rand_2frames.json,
          DAVIS/2017/phase2/davis_gt
  youtube YouTube/{train_480p,train,valid,valid_full,all_frames/valid_all_frames},
          YouTube/yv_rand_2frames.json, YouTube/phase2/yv_gt_480p
  static  static/{fss/<class>,DUTS-TR,DUTS-TE,ecssd,BIG_small,HRSOD_small}
  bl30k   BL30K/{JPEGImages,Annotations}
"""
import io
import json
import os
import shutil
import zlib

import numpy as np
from PIL import Image

from util.errors import UserError
from util.files import atomic_write
from util.image_io import write_mask
from dataset.two_shot_split import make_split, prepare_sparse_gt, write_split
from scripts.data.synthetic_video import make_video

JPEG_QUALITY = 90
MARKER = '.synthetic.json'     # marks a tree this module wrote (safe to replace)
LAYOUT_ROOTS = {'davis': 'DAVIS', 'youtube': 'YouTube', 'static': 'static', 'bl30k': 'BL30K'}
STATIC_SETS = ('fss', 'DUTS-TR', 'DUTS-TE', 'ecssd', 'BIG_small', 'HRSOD_small')
CATEGORIES = ('ball', 'fish', 'car', 'bird', 'leaf', 'hat', 'cup', 'kite', 'frisbee', 'toy')
YT_STEP = 5                    # YouTube-VOS annotates (and train_480p keeps) every 5th frame


def _jpeg_bytes(img):
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format='JPEG', quality=JPEG_QUALITY, subsampling=0)
    return buf.getvalue()


def _write_bytes(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'wb') as f:
        f.write(data)


def _write_lines(path, lines):
    _write_bytes(path, ''.join(f'{x}\n' for x in lines).encode())


def _write_video(jpg_dirs, ann_dirs, names, imgs, masks, mask_frames=None):
    """Write frames (to every dir in jpg_dirs) and masks (to ann_dirs) of one video.

    mask_frames: indices whose masks are written (all when None).
    """
    for i, (name, img) in enumerate(zip(names, imgs)):
        data = _jpeg_bytes(img)
        for d in jpg_dirs:
            _write_bytes(os.path.join(d, name + '.jpg'), data)
        if mask_frames is None or i in mask_frames:
            for d in ann_dirs:
                write_mask(os.path.join(d, name + '.png'), masks[i])


def _video_rng(seed, tag, index):
    """One Generator per video, from (seed, tag, index): adding videos never changes others."""
    return np.random.default_rng([seed, zlib.crc32(tag.encode()), index])


def _video_length(seed, tag, index, frames, max_frames):
    """Frames of one video: `frames`, or uniform in frames..max_frames (its own Generator)."""
    if not max_frames or max_frames <= frames:
        return frames
    return int(_video_rng(seed, tag + '-length', index).integers(frames, max_frames + 1))


def _prepare_root(out, layout, params):
    """Create OUT/<layout root>; replace it only if it is a tree this module wrote before."""
    root = os.path.join(out, LAYOUT_ROOTS[layout])
    if os.path.isdir(root) and os.listdir(root):
        if not os.path.isfile(os.path.join(root, MARKER)):
            raise UserError(f'{root}: exists and was not written by scripts.data.synthetic; '
                            'choose another --out (refusing to overwrite real data)')
        shutil.rmtree(root)
    os.makedirs(root, exist_ok=True)
    atomic_write(os.path.join(root, MARKER), lambda tmp: _write_bytes(
        tmp, json.dumps(dict(params, layout=layout), sort_keys=True, indent=1).encode()))
    return root


def _two_shot(annotations, split_path, sparse_dir, seed, videos):
    split = make_split(annotations, frames=2, seed=seed, videos=videos)
    write_split(split, split_path)
    prepare_sparse_gt(annotations, split, sparse_dir, split_name=split_path)


def _gen_davis(root, videos, frames, height, width, objects, seed, val_videos, max_frames=None,
               drift=0.0):
    tv = os.path.join(root, '2017', 'trainval')
    names = [f'davis_{i:03d}' for i in range(videos)]
    n_val = min(max(val_videos, 0), videos - 1)
    train, val = names[:videos - n_val], names[videos - n_val:]
    d16 = os.path.join(root, '2016')
    for i, v in enumerate(names):
        n = _video_length(seed, 'davis', i, frames, max_frames)
        fnames = [f'{t:05d}' for t in range(n)]
        imgs, masks = make_video(_video_rng(seed, 'davis', i), n, height, width, objects,
                                 drift=drift)
        _write_video([os.path.join(tv, 'JPEGImages', '480p', v)],
                     [os.path.join(tv, 'Annotations', '480p', v)], fnames, imgs, masks)
        if v in val:   # DAVIS 2016: single object (object 1 as id 1)
            _write_video([os.path.join(d16, 'JPEGImages', '480p', v)],
                         [os.path.join(d16, 'Annotations', '480p', v)], fnames, imgs,
                         [(m == 1).astype(np.uint8) for m in masks])
    _write_lines(os.path.join(tv, 'ImageSets', '2017', 'train.txt'), train)
    _write_lines(os.path.join(tv, 'ImageSets', '2017', 'val.txt'), val)
    _write_lines(os.path.join(d16, 'ImageSets', '2016', 'val.txt'), val)
    td = os.path.join(root, '2017', 'test-dev')
    td_names = [f'davis_testdev_{i:03d}' for i in range(2)]
    fnames = [f'{t:05d}' for t in range(frames)]
    for i, v in enumerate(td_names):
        imgs, masks = make_video(_video_rng(seed, 'davis-testdev', i), frames, height, width,
                                 objects, drift=drift)
        _write_video([os.path.join(td, 'JPEGImages', '480p', v)],
                     [os.path.join(td, 'Annotations', '480p', v)], fnames, imgs, masks,
                     mask_frames={0})
    _write_lines(os.path.join(td, 'ImageSets', '2017', 'test-dev.txt'), td_names)
    split = os.path.join(root, '2017', 'davis_rand_2frames.json')
    sparse = os.path.join(root, '2017', 'phase2', 'davis_gt')
    _two_shot(os.path.join(tv, 'Annotations', '480p'), split, sparse, seed, train)
    return {'root': root, 'trainval': tv, 'test_dev': td, 'davis16': d16,
            'train_list': os.path.join(tv, 'ImageSets', '2017', 'train.txt'),
            'val_list': os.path.join(tv, 'ImageSets', '2017', 'val.txt'),
            'split': split, 'sparse': sparse}


def _yt_objects(rng, objects, frames, step):
    """Non-contiguous ids and entry frames (multiples of `step`) for one YouTube-style video.

    ids are drawn from 1..2K+1 and are never exactly 1..K; with K >= 2 the last object enters
    between a fifth and a half of the video.
    """
    while True:
        ids = sorted(int(i) for i in rng.choice(np.arange(1, 2 * objects + 2), objects,
                                                replace=False))
        if ids != list(range(1, objects + 1)):
            break
    enter = [0] * objects
    if objects >= 2 and frames >= 3:
        lo, hi = max(1, frames // 5), max(1, frames // 2)
        enter[-1] = int(rng.integers(lo, hi + 1)) * step
    return ids, enter


def _gen_youtube(root, videos, frames, height, width, objects, seed, val_videos,
                 max_frames=None, drift=0.0):
    tr480, tr = os.path.join(root, 'train_480p'), os.path.join(root, 'train')
    train = [f'yt_train_{i:03d}' for i in range(videos)]
    for i, v in enumerate(train):
        rng = _video_rng(seed, 'youtube-train', i)
        n = _video_length(seed, 'youtube-train', i, frames, max_frames)
        names = [f'{YT_STEP * t:05d}' for t in range(n)]
        ids, enter = _yt_objects(rng, objects, n, 1)
        imgs, masks = make_video(rng, n, height, width, objects, ids=ids, enter=enter,
                                 drift=drift)
        _write_video([os.path.join(tr480, 'JPEGImages', v), os.path.join(tr, 'JPEGImages', v)],
                     [os.path.join(tr480, 'Annotations', v), os.path.join(tr, 'Annotations', v)],
                     names, imgs, masks)
    valid, full = os.path.join(root, 'valid'), os.path.join(root, 'valid_full')
    allf = os.path.join(root, 'all_frames', 'valid_all_frames')
    meta = {'videos': {}}
    for i in range(max(val_videos, 0)):
        v = f'yt_valid_{i:03d}'
        rng = _video_rng(seed, 'youtube-valid', i)
        n = _video_length(seed, 'youtube-valid', i, frames, max_frames)
        names = [f'{YT_STEP * t:05d}' for t in range(n)]
        n_all = (n - 1) * YT_STEP + 1
        ids, enter = _yt_objects(rng, objects, n, YT_STEP)
        imgs, masks = make_video(rng, n_all, height, width, objects, ids=ids, enter=enter,
                                 speed=1.0 / YT_STEP, drift=drift)
        all_names = [f'{t:05d}' for t in range(n_all)]
        _write_video([os.path.join(allf, 'JPEGImages', v)], [], all_names, imgs, masks,
                     mask_frames=set())
        listed = list(range(0, n_all, YT_STEP))
        l_imgs, l_masks = [imgs[t] for t in listed], [masks[t] for t in listed]
        _write_video([os.path.join(valid, 'JPEGImages', v)], [os.path.join(full, 'Annotations', v)],
                     names, l_imgs, l_masks)
        objs, first = {}, {}
        for oid in ids:
            present = [j for j, m in enumerate(l_masks) if (m == oid).any()]
            if not present:
                continue
            first[oid] = present[0]
            objs[str(oid)] = {'category': CATEGORIES[int(rng.integers(0, len(CATEGORIES)))],
                              'frames': [names[j] for j in present]}
        meta['videos'][v] = {'objects': objs}
        for j in sorted(set(first.values())):   # only objects that first appear on frame j
            new = [oid for oid, f in first.items() if f == j]
            write_mask(os.path.join(valid, 'Annotations', v, names[j] + '.png'),
                       np.where(np.isin(l_masks[j], new), l_masks[j], 0).astype(np.uint8))
    meta_path = os.path.join(valid, 'meta.json')
    atomic_write(meta_path, lambda tmp: _write_bytes(
        tmp, json.dumps(meta, indent=1, sort_keys=True).encode()))
    split = os.path.join(root, 'yv_rand_2frames.json')
    sparse = os.path.join(root, 'phase2', 'yv_gt_480p')
    _two_shot(os.path.join(tr480, 'Annotations'), split, sparse, seed, None)
    return {'root': root, 'train_480p': tr480, 'train': tr, 'valid': valid, 'meta': meta_path,
            'valid_all_frames': allf, 'valid_full': full, 'split': split, 'sparse': sparse}


def _gen_static(root, videos, height, width, seed):
    n = max(videos, 2)
    out = {'root': root}
    for s, name in enumerate(STATIC_SETS):
        folder = os.path.join(root, name)
        out[name] = folder
        for i in range(n):
            img, mask = make_video(_video_rng(seed, 'static-' + name, i), 1, height, width, 1)
            if name == 'fss':    # one folder per class, files 1.jpg/1.png, 2.jpg/2.png ...
                d, stem = os.path.join(folder, f'class_{i % 2}'), str(i // 2 + 1)
            else:
                d, stem = folder, f'{name.lower()}_{i:05d}'
            _write_bytes(os.path.join(d, stem + '.jpg'), _jpeg_bytes(img[0]))
            write_mask(os.path.join(d, stem + '.png'), mask[0])
    return out


def _gen_bl30k(root, videos, frames, height, width, objects, seed, max_frames=None, drift=0.0):
    for i in range(videos):
        v = f'bl30k_{i:03d}'
        n = _video_length(seed, 'bl30k', i, frames, max_frames)
        fnames = [f'{t:05d}' for t in range(n)]
        imgs, masks = make_video(_video_rng(seed, 'bl30k', i), n, height, width, objects,
                                 drift=drift)
        _write_video([os.path.join(root, 'JPEGImages', v)], [os.path.join(root, 'Annotations', v)],
                     fnames, imgs, masks)
    return {'root': root, 'JPEGImages': os.path.join(root, 'JPEGImages'),
            'Annotations': os.path.join(root, 'Annotations')}


def generate(out, layout, videos=10, frames=20, height=120, width=216, objects=2, seed=0,
             val_videos=2, max_frames=None, drift=0.0):
    """Write one synthetic data set under `out` and return a dict of the paths it wrote.

    davis:   `videos` trainval videos (the last `val_videos` are val), all frames labeled with
             ids 1..K; 2 test-dev videos (frame 0 labeled); DAVIS 2016 = the val videos with
             object 1 only; two-shot split + sparse labels of the train videos.
             keys: root, trainval, test_dev, davis16, train_list, val_list, split, sparse
    youtube: `videos` train videos (train_480p and train, frames 00000, 00005, ...) and
             `val_videos` valid videos (valid/JPEGImages every 5th frame, valid/Annotations
             first appearances only, meta.json, all_frames/valid_all_frames every frame,
             valid_full/Annotations dense ground truth of the listed frames); ids skip numbers
             and with K >= 2 one object per video enters late. Two-shot split + sparse labels of
             train_480p. keys: root, train_480p, train, valid, meta, valid_all_frames,
             valid_full, split, sparse
    static:  `videos` (at least 2) single-object images per data set (binary masks, ids
             {0, 1}); keys: root and each data set name.
    bl30k:   `videos` videos, all frames labeled; keys: root, JPEGImages, Annotations.
    max_frames: each video (not static) gets its own length, uniform in frames..max_frames
    (YouTube: listed frames). drift (0..1): appearance change over time (see make_video).
    The layout root (OUT/DAVIS, OUT/YouTube, OUT/static, OUT/BL30K) is replaced when it was
    written by this function before, and refused when it holds anything else.
    """
    if layout not in LAYOUT_ROOTS:
        raise UserError(f'unknown layout {layout!r}; choose one of {sorted(LAYOUT_ROOTS)}')
    if min(videos, frames, objects) < 1 or height < 16 or width < 16:
        raise UserError('need videos, frames, objects >= 1 and height, width >= 16')
    if max_frames is not None and max_frames < frames:
        raise UserError(f'--max_frames {max_frames} is below --frames {frames}')
    if not 0.0 <= drift <= 1.0:
        raise UserError(f'--drift must be in [0, 1], got {drift}')
    if layout == 'davis' and videos < 2:
        raise UserError('the davis layout needs --videos >= 2 (train and val)')
    params = dict(videos=videos, frames=frames, height=height, width=width, objects=objects,
                  seed=seed, val_videos=val_videos)
    if max_frames or drift:          # recorded only when used: older trees stay byte-identical
        params.update(max_frames=max_frames, drift=drift)
    extra = dict(max_frames=max_frames, drift=drift)
    root = _prepare_root(str(out), layout, params)
    if layout == 'davis':
        return _gen_davis(root, videos, frames, height, width, objects, seed, val_videos, **extra)
    if layout == 'youtube':
        return _gen_youtube(root, videos, frames, height, width, objects, seed, val_videos,
                            **extra)
    if layout == 'static':
        return _gen_static(root, videos, height, width, seed)
    return _gen_bl30k(root, videos, frames, height, width, objects, seed, **extra)
