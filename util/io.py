"""Reading frames and index masks, writing palette PNGs and checkpoints atomically.

Every reader raises `UserError` naming the file on a missing/corrupt/ill-shaped input.
Every writer writes to a temporary file in the destination folder, fsyncs and renames it
into place, so readers in other processes never see a truncated file.
"""
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile

from util.errors import UserError
from util.layout import check_name


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


def read_list(path, what='video list', folder=None):
    """Non-empty stripped lines of a text file (an image-set / video list): none twice and,
    with `folder`, each a video folder in it (UserError naming the list otherwise). Training,
    inference and evaluation read their lists with it."""
    if not os.path.isfile(path):
        raise UserError(f'{path}: {what} not found')
    try:
        with open(path) as f:
            names = [line.strip() for line in f if line.strip()]
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f'{path}: cannot read {what} ({e})') from e
    if not names:
        raise UserError(f'{path}: empty {what}')
    seen = set()
    for n in names:
        if n in seen:
            raise UserError(f'{path}: video {n!r} is listed twice')
        seen.add(n)
        check_name(n, path)
        if folder is not None and not os.path.isdir(os.path.join(folder, n)):
            raise UserError(f'{path}: video {n!r} has no frame folder {os.path.join(folder, n)}')
    return names


def _no_duplicate_keys(path):
    def hook(pairs):
        keys = [k for k, _ in pairs]
        dup = next((k for i, k in enumerate(keys) if k in keys[:i]), None)
        if dup is not None:
            raise UserError(f'{path}: key {dup!r} appears twice (JSON keeps only the last)')
        return dict(pairs)
    return hook


def read_json(path, what='JSON file'):
    """A JSON file whose objects hold no key twice; UserError naming the file otherwise."""
    if not os.path.isfile(path):
        raise UserError(f'{path}: {what} not found')
    try:
        with open(path) as f:
            return json.load(f, object_pairs_hook=_no_duplicate_keys(path))
    except json.JSONDecodeError as e:
        raise UserError(f'{path}: not valid JSON ({e})') from e
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f'{path}: cannot read {what} ({e})') from e


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


def _remove(path):
    """Remove a folder tree, or only the link when path is a symbolic link."""
    if os.path.islink(path):
        os.unlink(path)
    elif os.path.exists(path):
        shutil.rmtree(path)


def publish_folder(final, fill):
    """Write a whole folder atomically: fill(tmp) writes the files into `.tmp_<name>` beside
    `final`; files and folder are fsynced, then it is renamed to `final` (replacing an older
    one), so that neither a kill nor a crash leaves a half-written `final`."""
    final = Path(final)
    out = final.parent
    tmp, old = out / f'.tmp_{final.name}', out / f'.old_{final.name}'
    for stale in (tmp, old):
        _remove(stale)
    try:
        tmp.mkdir(parents=True)
        fill(tmp)
        for f in tmp.iterdir():
            fsync_path(f)
        fsync_path(tmp)
        if os.path.lexists(final):  # replace: old (a folder or a link to one) out of the way
            os.replace(final, old)
            os.replace(tmp, final)
            _remove(old)
        else:
            os.replace(tmp, final)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(e, OSError):  # disk full, read-only or vanished folder
            raise UserError(f'{final}: cannot write ({e.strerror or e}); nothing of it was '
                            'written') from e
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


class _WriteErrors:
    """A binary file that remembers the OSError of a failed write (torch.save turns it into
    a RuntimeError about stream positions)."""

    def __init__(self, f):
        self.f, self.error = f, None

    def write(self, data):
        try:
            return self.f.write(data)
        except OSError as e:
            self.error = e
            raise

    def flush(self):
        self.f.flush()


def save_checkpoint(obj, path):
    """torch.save, atomically; a full disk is the OSError (ENOSPC) atomic_write reports
    naming the path."""
    import torch

    def write(tmp):
        with open(tmp, 'wb') as f:
            out = _WriteErrors(f)
            try:
                torch.save(obj, out)
            except RuntimeError:
                if out.error is not None:
                    raise out.error from None
                raise
    atomic_write(path, write)


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


def _strict_decoding():
    """Truncated images must fail to load: PIL's LOAD_TRUNCATED_IMAGES (a process-wide flag
    that some libraries switch on) would silently fill the missing rows with grey/zeros."""
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        import warnings
        warnings.warn('PIL.ImageFile.LOAD_TRUNCATED_IMAGES was switched on; util.io switches '
                      'it off so that truncated frames and masks are reported', RuntimeWarning)
        ImageFile.LOAD_TRUNCATED_IMAGES = False


def open_image(path):
    """The decoded PIL image of a file, or a UserError naming it (missing, truncated, corrupt)."""
    _strict_decoding()
    if not os.path.isfile(path):
        raise UserError(f'{path}: file not found')
    try:
        img = Image.open(path)
        img.load()
    except Exception as e:  # PIL raises many types for truncated/corrupt files
        raise UserError(f'{path}: cannot read image ({e})') from e
    return img


GREY16_MODES = ('I;16', 'I;16L', 'I;16B', 'I;16N')
FRAME_MODES = ('1', 'L', 'P', 'RGB', 'RGBA', 'RGBX', 'RGBa', 'CMYK', 'YCbCr', 'LA', 'La', 'PA',
               'I') + GREY16_MODES


def frame_problem(img):
    """Why an opened frame cannot be read as 8-bit RGB, or None."""
    if img.mode not in FRAME_MODES:
        return (f'frame mode {img.mode} is not supported; save frames as 8-bit RGB '
                'JPEG or PNG')
    if img.mode == 'I':
        lo, hi = img.getextrema()
        if lo < 0 or hi > 65535:
            return f'frame values {lo}..{hi} (mode I) are outside 0..65535'
    return None


def mask_problem(img):
    """Why an opened mask is not a PNG of label ids, or None (modes: see read_mask)."""
    if img.format != 'PNG':
        return (f'not a PNG file ({img.format or "unknown"} data); a mask must be a PNG of '
                'label ids (lossy JPEG pixels are not ids)')
    return None


def read_frame(path):
    """Read an image as RGB uint8 [H, W, 3]. 16-bit grey frames (and mode I holding 16-bit
    values) are scaled to 8 bits; modes without an RGB reading are refused naming the file."""
    img = open_image(path)
    problem = frame_problem(img)
    if problem:
        raise UserError(f'{path}: {problem}')
    if img.mode in GREY16_MODES or img.mode == 'I':
        grey = np.asarray(img).astype(np.int64)
        if img.mode in GREY16_MODES or grey.max() > 255:
            grey = (grey * 255 + 32767) // 65535                 # 0..65535 -> 0..255, rounded
        return np.repeat(grey.astype(np.uint8)[..., None], 3, axis=2)
    return np.asarray(img.convert('RGB'))


def frame_size(path):
    """(H, W) of a frame from its header (no pixel decoding); UserError naming the file when
    it is missing, not an image, or of a mode read_frame refuses."""
    _strict_decoding()
    if not os.path.isfile(path):
        raise UserError(f'{path}: file not found')
    try:
        with Image.open(path) as img:
            problem = None if img.mode == 'I' else frame_problem(img)   # I: values at load
            w, h = img.size
    except Exception as e:
        raise UserError(f'{path}: cannot read image ({e})') from e
    if problem:
        raise UserError(f'{path}: {problem}')
    return h, w


def check_frame_sizes(folder, names):
    """(H, W) shared by the frames `names` of a video folder, read from their headers;
    UserError naming the first frame of another size. Training and inference check with it."""
    size = None
    for n in names:
        path = os.path.join(folder, n)
        s = frame_size(path)
        if size is None:
            size = s
        elif s != size:
            raise UserError(f'{path}: frame size {s[1]}x{s[0]} differs from the first frame of '
                            f'the video ({size[1]}x{size[0]})')
    return size


def read_mask(path, palette=None):
    """Read an index mask as uint8 [H, W].

    The file must be a PNG (whatever its name). Palette ('P') and grayscale ('L') PNGs give
    their values directly. An RGB(A) mask is
    accepted when every colour in it is an entry of `palette` (DAVIS by default) or it is
    black/white only; otherwise the error explains what was expected.
    """
    img = open_image(path)
    problem = mask_problem(img)
    if problem:
        raise UserError(f'{path}: {problem}')
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
    img = open_image(path)
    pal = img.getpalette() if img.mode == 'P' else None
    if not pal:
        return DAVIS_PALETTE_BYTES
    pal = bytes(pal) + bytes(768 - len(pal)) if len(pal) < 768 else bytes(pal[:768])
    return pal
