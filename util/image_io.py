"""Frames and index masks: reading (strictly decoded, checked modes and sizes), palette PNGs
written atomically (util.files), the DAVIS palette.
"""
import os

import numpy as np
from PIL import Image, ImageFile

from util.errors import UserError
from util.files import atomic_write


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
        warnings.warn('PIL.ImageFile.LOAD_TRUNCATED_IMAGES was switched on; util.files switches '
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
