"""Reading frames and index masks, writing palette PNGs and checkpoints atomically.

Every reader raises `UserError` naming the file on a missing/corrupt/ill-shaped input.
Every writer writes to a temporary file in the destination folder, fsyncs and renames it
into place, so readers in other processes never see a truncated file.
"""
import os
import tempfile

import numpy as np
from PIL import Image

from util.errors import UserError


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


def atomic_write(path, write_fn, suffix=''):
    """Call write_fn(tmp_path) for a temporary file beside `path`, fsync it, rename into place."""
    path = str(path)
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix='.tmp_', suffix=suffix or os.path.splitext(path)[1],
                                   dir=folder)
        os.close(fd)
    except OSError as e:
        raise UserError(f'{folder}: cannot write here ({e.strerror})') from e
    try:
        write_fn(tmp)
        with open(tmp, 'rb+') as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


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


def _open_image(path):
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
