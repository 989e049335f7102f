"""Reading frames and index masks, writing palette PNGs and checkpoints atomically.

Every reader raises `UserError` naming the file on a missing/corrupt/ill-shaped input.
Every writer writes to a temporary file in the destination folder, fsyncs and renames it
into place, so readers in other processes never see a truncated file.
"""
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile

from util.errors import UserError


class CurrentStderr:
    """A stream writing to whatever sys.stderr is at write time, for progress bars:
    progressbar swaps a given sys.stderr for the stream it saw at its own import (which
    pytest's capture, for one, has closed by the time a later test draws a bar)."""

    def write(self, text):
        return sys.stderr.write(text)

    def flush(self):
        sys.stderr.flush()

    def isatty(self):
        return sys.stderr.isatty()


def _voc_palette(n=256):
    """The DAVIS / PASCAL-VOC colour map: id bits spread over the high bits of R, G, B."""
    pal = np.zeros((n, 3), dtype=np.uint8)
    for i in range(n):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal[i] = (r, g, b)
    return pal


DAVIS_PALETTE = _voc_palette()          # [256, 3] uint8
DAVIS_PALETTE_BYTES = DAVIS_PALETTE.tobytes()


FILE_MODE = 0o644              # mkstemp creates 0600; outputs are meant to be shared


def require_dir(path, what):
    """path, or a UserError naming it and what it should have been."""
    if not os.path.isdir(path):
        raise UserError(f'{path}: {what} not found')
    return path


def davis_2017_dir(root):
    """The DAVIS 2017 folder (holding trainval/) of a DAVIS root given either way: the folder
    holding 2017/ (../DAVIS) or the 2017 folder itself (../DAVIS/2017, the original's
    --davis_path). Neither: <root>/2017, so that errors name the expected path."""
    root = str(root)
    if not os.path.isdir(os.path.join(root, '2017')) and os.path.isdir(
            os.path.join(root, 'trainval')):
        return root
    return os.path.join(root, '2017')


def read_list(path, what='video list'):
    """Non-empty stripped lines of a text file (an image-set / video list)."""
    if not os.path.isfile(path):
        raise UserError(f'{path}: {what} not found')
    with open(path) as f:
        names = [line.strip() for line in f if line.strip()]
    if not names:
        raise UserError(f'{path}: empty {what}')
    return names


def fsync_path(path):
    """fsync a file or a folder (a folder: so that renames inside it survive a crash);
    a no-op where the platform does not support it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path, write_fn, suffix=''):
    """Call write_fn(tmp_path) for a temporary file beside `path`, fsync it, rename into place.

    The temporary file ('.tmp_*', skipped by every folder listing here) gets mode 0644 before
    the rename, and the folder is fsynced after it: readers in other processes see either the
    old file or the complete new one, never a truncated file, also after a crash. On any
    error (or KeyboardInterrupt) the temporary file is removed and `path` is left as it was.
    An OSError (unwritable folder, disk full) becomes a UserError naming the path.
    """
    path = str(path)
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix='.tmp_', suffix=suffix or os.path.splitext(path)[1],
                                   dir=folder)
        os.close(fd)
    except OSError as e:
        raise UserError(f'{folder}: cannot write here ({e.strerror or e})') from e
    try:
        write_fn(tmp)
        with open(tmp, 'rb+') as f:
            os.fsync(f.fileno())
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.remove(tmp)
        if isinstance(e, OSError) and not isinstance(e, FileNotFoundError):
            raise UserError(f'{path}: cannot write ({e.strerror or e})') from e
        raise
    fsync_path(folder)


def publish_folder(final, fill):
    """Write a whole folder atomically: fill(tmp) writes the files into `.tmp_<name>` beside
    `final`; files and folder are fsynced, then it is renamed to `final` (replacing an older
    one), so that neither a kill nor a crash leaves a half-written `final`."""
    final = Path(final)
    out = final.parent
    tmp, old = out / f'.tmp_{final.name}', out / f'.old_{final.name}'
    for stale in (tmp, old):
        if stale.exists():
            shutil.rmtree(stale)
    tmp.mkdir(parents=True)
    try:
        fill(tmp)
        for f in tmp.iterdir():
            fsync_path(f)
        fsync_path(tmp)
        if final.exists():          # replace: old out of the way, new in
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old)
        else:
            os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    fsync_path(out)


def ensure_writable_dir(folder, what='output folder', keep=False):
    """Check that files can be written in `folder` (UserError naming it if not).

    Scripts call this before any work so that an unwritable output (a path under a regular
    file, a read-only mount, /proc, no permission) fails at once, not after hours of compute.
    It creates the missing folders and a probe file, then removes what it created (unless
    keep=True): a run that fails later leaves no empty output folder behind. Processes that
    probe the same folder at once (the ranks of a training run) must pass keep=True.
    """
    folder = str(folder)
    missing = []
    cur = os.path.abspath(folder)
    while not os.path.lexists(cur) and os.path.dirname(cur) != cur:
        missing.append(cur)
        cur = os.path.dirname(cur)
    created = []
    try:
        for d in reversed(missing):
            try:
                os.mkdir(d)
                created.append(d)
            except FileExistsError:
                if not os.path.isdir(d):
                    raise
        fd, probe = tempfile.mkstemp(prefix='.tmp_probe_', dir=folder)
        os.close(fd)
        os.remove(probe)
    except OSError as e:
        raise UserError(f'{folder}: {what} is not writable ({e.strerror or e})') from e
    finally:
        for d in ([] if keep else reversed(created)):
            try:
                os.rmdir(d)
            except OSError:
                pass
    return folder


def complete_pngs(folder, stems):
    """True when <folder>/<stem>.png exists and decodes for every stem (eval --resume)."""
    _strict_decoding()
    for s in stems:
        path = os.path.join(folder, s + '.png')
        if not os.path.isfile(path):
            return False
        try:
            with Image.open(path) as img:
                img.load()
        except Exception:  # truncated / corrupt: not complete
            return False
    return True


def save_checkpoint(obj, path):
    """torch.save, atomically."""
    import torch
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def write_mask(path, mask, palette=None):
    """Save an index mask [H, W] (values 0..255) as an 8-bit palette PNG, atomically.

    palette: 768 bytes (or [256, 3] array); the DAVIS palette when None.
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f'{path}: a mask must be 2-D, got shape {mask.shape}')
    img = Image.fromarray(mask.astype(np.uint8), mode='P')
    if palette is None:
        palette = DAVIS_PALETTE_BYTES
    elif isinstance(palette, np.ndarray):
        palette = palette.astype(np.uint8).tobytes()
    img.putpalette(palette)
    atomic_write(path, lambda tmp: img.save(tmp, format='PNG'))


def skip_complete_videos(dataset, out_dir, expected_stems):
    """--resume of the eval scripts: drop from dataset.videos each video whose outputs are done.

    expected_stems(name) -> the frame stems the script writes for that video (None when that
    cannot be told without loading it: the video is then processed). A video is complete
    when every <out_dir>/<name>/<stem>.png exists and decodes. Returns the skipped names.
    """
    keep, skipped = [], []
    for name in dataset.videos:
        stems = expected_stems(name)
        if stems and complete_pngs(os.path.join(str(out_dir), name), stems):
            skipped.append(name)
        else:
            keep.append(name)
    dataset.videos = keep
    return skipped


def _strict_decoding():
    """Truncated images must fail to load: PIL's LOAD_TRUNCATED_IMAGES (a process-wide flag
    that some libraries switch on) would silently fill the missing rows with grey/zeros."""
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        import warnings
        warnings.warn('PIL.ImageFile.LOAD_TRUNCATED_IMAGES was switched on; util.io switches '
                      'it off so that truncated frames and masks are reported', RuntimeWarning)
        ImageFile.LOAD_TRUNCATED_IMAGES = False


def _open_image(path):
    _strict_decoding()
    if not os.path.isfile(path):
        raise UserError(f'{path}: file not found')
    try:
        img = Image.open(path)
        img.load()
    except Exception as e:  # PIL raises many types for truncated/corrupt files
        raise UserError(f'{path}: cannot read image ({e})') from e
    return img


def read_frame(path):
    """Read an image as RGB uint8 [H, W, 3]."""
    return np.asarray(_open_image(path).convert('RGB'))


def read_mask_image(path):
    """Open a mask PNG, keeping its mode (for palette access); errors name the file."""
    return _open_image(path)


def read_mask(path, palette=None):
    """Read an index mask as uint8 [H, W].

    Palette ('P') and grayscale ('L') PNGs give their values directly. An RGB(A) mask is
    accepted when every colour in it is an entry of `palette` (DAVIS by default) or it is
    black/white only; otherwise the error explains what was expected.
    """
    img = _open_image(path)
    if img.mode in ('P', 'L'):
        return np.asarray(img, dtype=np.uint8)
    if img.mode in ('1', 'I', 'I;16'):
        arr = np.asarray(img)
        if arr.max() > 255:
            raise UserError(f'{path}: mask values above 255 (mode {img.mode}); '
                            'expected an 8-bit palette PNG')
        return (arr > 0).astype(np.uint8) if img.mode == '1' else arr.astype(np.uint8)
    if img.mode in ('RGB', 'RGBA'):
        rgb = np.asarray(img.convert('RGB'))
        pal = DAVIS_PALETTE if palette is None else np.frombuffer(
            bytes(palette), dtype=np.uint8).reshape(-1, 3)
        colours, inverse = np.unique(rgb.reshape(-1, 3), axis=0, return_inverse=True)
        lut = {tuple(p): i for i, p in reversed(list(enumerate(pal.tolist())))}
        ids = []
        for c in colours.tolist():
            if tuple(c) in lut:
                ids.append(lut[tuple(c)])
            elif len(colours) <= 2 and tuple(c) == (255, 255, 255):
                ids.append(1)
            else:
                raise UserError(f'{path}: RGB mask with colour {tuple(c)} that is not in the '
                                'palette; save masks as 8-bit palette PNGs (ids 0..255)')
        return np.asarray(ids, dtype=np.uint8)[inverse.reshape(-1)].reshape(rgb.shape[:2])
    raise UserError(f'{path}: unsupported mask mode {img.mode}; expected an 8-bit palette PNG')


def get_palette(path):
    """The 768-byte palette of a palette PNG, or the DAVIS palette when it has none."""
    img = _open_image(path)
    pal = img.getpalette() if img.mode == 'P' else None
    if not pal:
        return DAVIS_PALETTE_BYTES
    pal = bytes(pal) + bytes(768 - len(pal)) if len(pal) < 768 else bytes(pal[:768])
    return pal
