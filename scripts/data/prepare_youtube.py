"""Resize a YouTube-VOS folder as STCN's users do: shorter side to 480, frames bicubic,
masks nearest with their palette.

    python -m scripts.data.prepare_youtube --src ../YouTube/train --out ../YouTube/train_480p \
        [--size 480] [--workers N]
    python -m scripts.data.prepare_youtube --src ../YouTube/valid_all_frames \
        --out ../YouTube/all_frames/valid_all_frames --size 0

SRC is an extracted YouTube-VOS folder: SRC/JPEGImages/<video>/*.jpg and, when it has labels,
SRC/Annotations/<video>/*.png (a meta.json beside them is copied). Every frame is resized so
that its shorter side is --size (the longer one scaled and truncated to an integer), bicubic,
and saved as JPEG; every mask nearest-neighbour, keeping its mode and palette, so the label ids
do not change. --size 0 copies the files unchanged (the all-frames validation set is used at
its original size: the evaluation resizes internally and writes masks at that size).

Each video is written into temporary folders renamed into place when all its files are
written, so a stopped run leaves only whole videos; a rerun skips the videos already complete (every file of
SRC present). A source file that cannot be decoded stops the run with one line naming it
(exit status 2); the videos finished before it stay.
"""
import argparse
import os
import shutil
import sys
from concurrent.futures import ThreadPoolExecutor

from PIL import Image

from util.errors import UserError, run_main
from util.files import CurrentStderr, atomic_write, ensure_writable_dir, publish_folder
from util.image_io import open_image
from util.layout import (FRAME_EXTS, MASK_EXT, check_unique, generic_dirs, image_files,
                          list_videos)
from util.outputs import check_apart, check_folder_output

KINDS = (('JPEGImages', FRAME_EXTS), ('Annotations', (MASK_EXT,)))


def _files(folder, exts):
    """Time-sorted image names of a folder (hidden / temporary files skipped, one file per
    frame); [] if absent."""
    if not os.path.isdir(folder):
        return []
    return check_unique(folder, image_files(folder, exts))


def target_size(w, h, size):
    """(W, H) with the shorter side `size`, the longer one scaled and truncated."""
    if size <= 0:
        return w, h
    if w <= h:
        return size, int(h * size / w)
    return int(w * size / h), size


def resize_frame(src, dst, size):
    """One frame: RGB, bicubic; JPEG at PIL's default quality (a .png frame stays PNG)."""
    if size <= 0:
        open_image(src)
        shutil.copyfile(src, dst)
        return
    img = open_image(src).convert('RGB')
    new = target_size(img.width, img.height, size)
    if new != img.size:
        img = img.resize(new, Image.BICUBIC)
    img.save(dst, format='PNG' if dst.lower().endswith('.png') else 'JPEG')


def resize_mask(src, dst, size):
    """One mask: nearest-neighbour, same mode, same palette (ids unchanged)."""
    if size <= 0:
        open_image(src)
        shutil.copyfile(src, dst)
        return
    img = open_image(src)
    if img.mode not in ('P', 'L', '1'):
        raise UserError(f'{src}: mask of mode {img.mode}; expected an 8-bit palette PNG')
    new = target_size(img.width, img.height, size)
    out = img.resize(new, Image.NEAREST) if new != img.size else img
    if img.mode == 'P':
        out.putpalette(img.getpalette())
        info = {'transparency': img.info['transparency']} if 'transparency' in img.info else {}
        out.save(dst, format='PNG', **info)
    else:
        out.save(dst, format='PNG')


def _plan(src, out, video):
    """[(kind, src folder, out folder, names)] for the parts of one video that SRC has."""
    parts = []
    for kind, exts in KINDS:
        sdir = os.path.join(src, kind, video)
        names = _files(sdir, exts)
        if names:
            parts.append((kind, sdir, os.path.join(out, kind, video), names))
    return parts


def is_complete(parts):
    """Every output folder exists and holds every file of its source (published folders
    appear only whole, so presence is enough)."""
    return all(os.path.isdir(odir) and set(names) <= set(os.listdir(odir))
               for _, _, odir, names in parts)


def prepare_video(parts, size):
    """Write the folders of one video: each is filled in a temporary folder, and the renames
    into place all come after the last file is written (nested publish_folder calls), so a
    failure or a stop leaves none of them, or all."""
    if not parts:
        return
    (kind, sdir, odir, names), rest = parts[0], parts[1:]
    fn = resize_mask if kind == 'Annotations' else resize_frame

    def fill(tmp):
        for n in names:
            fn(os.path.join(sdir, n), os.path.join(str(tmp), n), size)
        prepare_video(rest, size)                # published just before this folder is

    os.makedirs(os.path.dirname(odir), exist_ok=True)
    publish_folder(odir, fill)


def prepare(src, out, size=480, workers=1, progress=False):
    """Resize every video of SRC into OUT; returns (videos written, videos skipped)."""
    src, out = str(src), str(out)
    jpg, ann = generic_dirs(src)
    if not os.path.isdir(jpg):
        raise UserError(f'{jpg}: folder missing (--src must be an extracted YouTube-VOS folder '
                        'holding JPEGImages/ and, for the training set, Annotations/)')
    if os.path.abspath(src) == os.path.abspath(out):
        raise UserError(f'{out}: --out must differ from --src')
    check_folder_output(out, 'output folder (--out)')
    check_apart([('output folder (--out)', out)], [('source folder (--src)', src)])
    if size < 0:
        raise UserError(f'--size {size}: must be >= 0 (0 copies unchanged)')
    videos = sorted(set(list_videos(jpg)) | set(list_videos(ann)))
    if not videos:
        raise UserError(f'{jpg}: holds no video folders')
    plans = [_plan(src, out, v) for v in videos]
    ensure_writable_dir(out, keep=True)
    todo = [p for p in plans if p and not is_complete(p)]
    skipped = len(plans) - len(todo)
    meta = os.path.join(src, 'meta.json')
    if os.path.isfile(meta):
        atomic_write(os.path.join(out, 'meta.json'), lambda tmp: shutil.copyfile(meta, tmp))
    bar = None
    if progress and todo:
        import progressbar
        bar = progressbar.ProgressBar(max_value=len(todo), prefix='resizing ',
                                      fd=CurrentStderr())
        bar.start()
    done = 0
    if workers > 1:                        # PIL decodes, resizes and encodes without the GIL
        with ThreadPoolExecutor(workers) as pool:
            futures = [pool.submit(prepare_video, p, size) for p in todo]
            try:
                for f in futures:
                    f.result()
                    done += 1
                    if bar is not None:
                        bar.update(done)
            except BaseException:
                for f in futures:
                    f.cancel()
                raise
    else:
        for p in todo:
            prepare_video(p, size)
            done += 1
            if bar is not None:
                bar.update(done)
    if bar is not None:
        bar.finish()
    return done, skipped


def main(argv):
    p = argparse.ArgumentParser(
        description='Resize a YouTube-VOS folder (shorter side --size; frames bicubic, masks '
                    'nearest with their palette), one video at a time, atomically.')
    p.add_argument('--src', required=True,
                   help='extracted folder holding JPEGImages/<video>/ (and Annotations/<video>/)')
    p.add_argument('--out', required=True, help='output folder (e.g. ../YouTube/train_480p)')
    p.add_argument('--size', type=int, default=480,
                   help='shorter side in pixels (0: copy unchanged)')
    p.add_argument('--workers', type=int, default=min(4, os.cpu_count() or 1),
                   help='videos resized at once (threads)')
    p.add_argument('--debug', action='store_true', help='full tracebacks on errors')
    a = p.parse_args(argv)
    if a.workers < 1:
        p.error('--workers must be >= 1')
    done, skipped = prepare(a.src, a.out, a.size, a.workers, progress=True)
    print(f'{done} videos written, {skipped} already complete (skipped) under {a.out}')
    return 0


if __name__ == '__main__':
    sys.exit(run_main(main))
