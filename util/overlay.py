"""Masks drawn on frames: DAVIS colours alpha-blended, object contours, text labels, grids,
and the writers of MP4 (cv2.VideoWriter), GIF (PIL) and PNG files.

Images here are uint8 RGB [H, W, 3]; masks are uint8 id maps [H, W] (0 = background).
"""
import os

import cv2
import numpy as np
from PIL import Image

from util.errors import UserError
from util.files import atomic_write
from util.image_io import DAVIS_PALETTE

VIDEO_EXTS = ('.mp4', '.gif')
FONT = cv2.FONT_HERSHEY_SIMPLEX
LABEL_BG = (32, 32, 32)
LABEL_FG = (255, 255, 255)


def contours(mask, width=1):
    """bool [H, W]: pixels of an object (id > 0) with a 4-neighbour of another id, thickened
    to `width` pixels (on object pixels only)."""
    mask = np.asarray(mask)
    edge = np.zeros(mask.shape, bool)
    edge[:-1] |= mask[:-1] != mask[1:]
    edge[1:] |= mask[1:] != mask[:-1]
    edge[:, :-1] |= mask[:, :-1] != mask[:, 1:]
    edge[:, 1:] |= mask[:, 1:] != mask[:, :-1]
    edge &= mask > 0
    if width > 1:
        grown = cv2.dilate(edge.astype(np.uint8), np.ones((3, 3), np.uint8),
                           iterations=width - 1) > 0
        edge = grown & (mask > 0)
    return edge


def overlay(frame, mask, alpha=0.5, contour_width=1, palette=DAVIS_PALETTE):
    """frame uint8 [H, W, 3], mask ids [H, W] (or None) -> uint8 [H, W, 3].

    Object pixels: (1 - alpha) * frame + alpha * palette[id]; contour pixels: palette[id].
    """
    frame = np.asarray(frame, dtype=np.uint8)
    if mask is None:
        return frame.copy()
    mask = np.asarray(mask)
    if mask.shape != frame.shape[:2]:
        raise ValueError(f'mask {mask.shape} and frame {frame.shape[:2]} sizes differ')
    colour = np.asarray(palette, dtype=np.float32)[mask]                  # [H, W, 3]
    out = frame.astype(np.float32)
    obj = mask > 0
    out[obj] = (1.0 - alpha) * out[obj] + alpha * colour[obj]
    if contour_width > 0:
        edge = contours(mask, contour_width)
        out[edge] = colour[edge]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def resize_to_height(img, height, nearest=False):
    """img [H, W(, 3)] scaled to `height` rows (aspect kept); unchanged for height <= 0."""
    h, w = img.shape[:2]
    if height <= 0 or height == h:
        return img
    new_w = max(1, int(round(w * height / h)))
    return cv2.resize(img, (new_w, height),
                      interpolation=cv2.INTER_NEAREST if nearest else cv2.INTER_AREA)


def _text_scale(height):
    """Font scale and thickness for text in a strip `height` pixels high."""
    scale = max(0.35, height / 40.0)
    return scale, max(1, int(round(scale * 1.6)))


def text_width(text, height):
    scale, thick = _text_scale(height)
    (w, _), _ = cv2.getTextSize(text, FONT, scale, thick)
    return w


def label_image(text, height, width, fg=LABEL_FG, bg=LABEL_BG, text_height=None):
    """uint8 [height, width, 3]: `text` on a plain background, vertically centred, left-aligned
    with a small margin. text_height: the strip height the font is sized for (default
    min(height, 32))."""
    img = np.empty((height, width, 3), np.uint8)
    img[:] = bg
    th = text_height or min(height, 32)
    scale, thick = _text_scale(th)
    (_, tht), _ = cv2.getTextSize(text, FONT, scale, thick)
    y = (height + tht) // 2
    cv2.putText(img, text, (max(2, th // 5), y), FONT, scale, fg, thick, cv2.LINE_AA)
    return img


def hstack_padded(images, gap=0, fill=0):
    """Images of one height side by side with `gap` pixels of `fill` between them."""
    if gap <= 0:
        return np.concatenate(images, 1)
    h = images[0].shape[0]
    sep = np.full((h, gap, 3), fill, np.uint8)
    parts = []
    for i, im in enumerate(images):
        parts += [sep, im] if i else [im]
    return np.concatenate(parts, 1)


def grid(cells, row_labels, gap=2, label_height=None, col_labels=None):
    """A grid with a label column on the left (and an optional header row).

    cells: rows of uint8 [h, w_j, 3] images; every row the same total width and each row's
    cells one height (rows may differ in height). Returns uint8 [H, W, 3].
    """
    rows = [hstack_padded(r, gap) for r in cells]
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in rows]
    th = label_height or min(32, max(12, min(r.shape[0] for r in rows) // 4))
    lw = max(text_width(t, th) for t in row_labels) + 2 * max(2, th // 5)
    out = []
    if col_labels is not None:
        cw = cells[0][0].shape[1]
        head = hstack_padded([label_image(t, th + 6, cw, text_height=th) for t in col_labels],
                             gap)
        head = np.pad(head, ((0, 0), (0, width - head.shape[1]), (0, 0)))
        out.append(np.concatenate([label_image('', th + 6, lw), head], 1))
    for r, t in zip(rows, row_labels):
        out.append(np.concatenate([label_image(t, r.shape[0], lw, text_height=th), r], 1))
    sep = np.zeros((gap, lw + width, 3), np.uint8)
    parts = []
    for i, r in enumerate(out):
        parts += [sep, r] if i and gap > 0 else [r]
    return np.concatenate(parts, 0)


def write_png(path, image):
    """uint8 [H, W, 3] as an RGB PNG, atomically."""
    img = Image.fromarray(np.asarray(image, dtype=np.uint8), 'RGB')
    atomic_write(path, lambda tmp: img.save(tmp, format='PNG'))


def _even(image):
    """Pad to even height and width (the MP4 encoders want them)."""
    h, w = image.shape[:2]
    return np.pad(image, ((0, h % 2), (0, w % 2), (0, 0)))


def write_video(path, images, fps=10):
    """A list of uint8 [H, W, 3] (one size) as MP4 (cv2 'mp4v') or GIF (PIL), atomically.

    MP4 frames are padded to even sizes. Raises ValueError on an unknown extension or when
    the MP4 encoder cannot be opened.
    """
    ext = os.path.splitext(str(path))[1].lower()
    if ext not in VIDEO_EXTS:
        raise ValueError(f'{path}: video output must end in {" or ".join(VIDEO_EXTS)}')
    if not images:
        raise ValueError(f'{path}: no frames to write')

    def write_mp4(tmp):
        first = _even(images[0])
        h, w = first.shape[:2]
        vw = cv2.VideoWriter(tmp, cv2.VideoWriter_fourcc(*'mp4v'), float(fps), (w, h))
        if not vw.isOpened():
            raise UserError(f'{path}: cv2.VideoWriter cannot write MP4 (mp4v) here; use .gif')
        try:
            for im in images:
                vw.write(cv2.cvtColor(_even(im), cv2.COLOR_RGB2BGR))
        finally:
            vw.release()

    def write_gif(tmp):
        frames = [Image.fromarray(np.asarray(im, dtype=np.uint8), 'RGB') for im in images]
        frames[0].save(tmp, format='GIF', save_all=True, append_images=frames[1:],
                       duration=max(1, int(round(1000.0 / fps))), loop=0)

    atomic_write(path, write_mp4 if ext == '.mp4' else write_gif)
