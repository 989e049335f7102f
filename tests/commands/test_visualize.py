"""util.overlay / scripts.visualize: palette colours, contours where masks change, and output
files of the right size and frame count (PNG contact sheet, MP4, GIF)."""
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
from PIL import Image

from util import overlay as ov
from util.image_io import DAVIS_PALETTE, write_mask
from scripts.data.synthetic_data import generate
from scripts.visualize import main

H, W, T = 40, 64, 5


@pytest.fixture(scope='module')
def davis(tmp_path_factory):
    paths = generate(tmp_path_factory.mktemp('vis'), 'davis', videos=2, frames=T, height=H,
                     width=W, objects=2, val_videos=1)
    tv = paths['trainval']
    return os.path.join(tv, 'JPEGImages', '480p'), os.path.join(tv, 'Annotations', '480p')


def test_overlay_blends_palette_and_draws_contours():
    frame = np.full((20, 30, 3), 100, np.uint8)
    mask = np.zeros((20, 30), np.uint8)
    mask[5:15, 5:12], mask[5:15, 12:20] = 1, 2          # two objects touching at column 12
    out = ov.overlay(frame, mask, alpha=0.5, contour_width=1)
    edge = ov.contours(mask)
    # contours exactly on object pixels next to another id (background or the other object)
    want = np.zeros_like(edge)
    for y, x in zip(*np.nonzero(mask)):
        nb = [mask[yy, xx] for yy, xx in ((y - 1, x), (y + 1, x), (y, x - 1), (y, x + 1))
              if 0 <= yy < 20 and 0 <= xx < 30]
        want[y, x] = any(n != mask[y, x] for n in nb)
    assert np.array_equal(edge, want)
    assert edge[10, 11] and edge[10, 12] and not edge[10, 8] and not edge[0, 0]
    # contour pixels take the palette colour, inner pixels the alpha blend, background stays
    assert (out[edge] == DAVIS_PALETTE[mask[edge]]).all()
    inner = (mask > 0) & ~edge
    blend = np.rint(0.5 * 100 + 0.5 * DAVIS_PALETTE[mask[inner]].astype(float))
    assert np.array_equal(out[inner], blend.astype(np.uint8))
    assert (out[mask == 0] == 100).all()
    # no contour when asked, and thicker ones stay on object pixels
    plain = ov.overlay(frame, mask, 0.5, 0)
    edge_blend = np.rint(0.5 * 100 + 0.5 * DAVIS_PALETTE[mask[edge]].astype(float))
    assert np.array_equal(plain[edge], edge_blend.astype(np.uint8))
    thick = ov.contours(mask, 3)
    assert thick.sum() > edge.sum() and not thick[mask == 0].any()


def _sheet(tmp_path, davis, *extra):
    out = str(tmp_path / 'sheet.png')
    jpg, ann = davis
    main(['--frames', jpg, '--masks', ann, '--masks', ann, '--labels', 'gt', 'again',
          '--videos', 'davis_000', '--out', out, '--columns', '3', *extra])
    return np.asarray(Image.open(out).convert('RGB'))


def test_contact_sheet_size_and_colours(tmp_path, davis):
    sheet = _sheet(tmp_path, davis, '--height', str(H), '--alpha', '1')
    # 3 columns of W px with 2 px gaps right of a label column; header + 2 rows of H px
    th = min(32, max(12, H // 4))
    assert sheet.shape[0] == (th + 6) + 2 + H + 2 + H
    right = sheet[:, -(3 * W + 4):]
    # with alpha 1 every object pixel of frame 0 shows exactly its palette colour
    mask0 = np.asarray(Image.open(os.path.join(davis[1], 'davis_000', '00000.png')))
    cell = right[th + 6 + 2:th + 6 + 2 + H, :W]
    ids = np.unique(mask0[mask0 > 0])
    assert len(ids) == 2
    for i in ids:
        assert (cell[mask0 == i] == DAVIS_PALETTE[i]).all()


def test_mp4_and_gif_sizes_and_frame_counts(tmp_path, davis):
    jpg, ann = davis
    mp4, gif = str(tmp_path / 'v.mp4'), str(tmp_path / 'v.gif')
    for out in (mp4, gif):
        main(['--frames', os.path.join(jpg, 'davis_001'), '--masks', os.path.join(ann, 'davis_001'),
              '--masks', os.path.join(ann, 'davis_001'), '--out', out])
    th = min(32, max(12, H // 10))
    want_h, want_w = H + th + 6, 2 * W + 2               # label strip over two panels
    cap = cv2.VideoCapture(mp4)
    n = 0
    while True:
        ok, fr = cap.read()
        if not ok:
            break
        n += 1
        assert fr.shape[:2] == (want_h + want_h % 2, want_w + want_w % 2)
    cap.release()
    assert n == T
    with Image.open(gif) as g:
        assert g.size == (want_w, want_h) and g.n_frames == T
    # a folder of one file per video, every 2nd frame
    main(['--frames', jpg, '--masks', ann, '--out', str(tmp_path / 'vids'), '--format', 'gif',
          '--every', '2'])
    assert sorted(os.listdir(tmp_path / 'vids')) == ['davis_000.gif', 'davis_001.gif']
    with Image.open(tmp_path / 'vids' / 'davis_000.gif') as g:
        assert g.n_frames == (T + 1) // 2


def test_bad_inputs_are_one_line(tmp_path, davis, repo_root):
    jpg, ann = davis
    bad = tmp_path / 'masks' / 'davis_000'
    bad.mkdir(parents=True)
    write_mask(bad / '00000.png', np.zeros((H + 2, W), np.uint8))
    r = subprocess.run([sys.executable, '-m', 'scripts.visualize', '--frames', jpg, '--masks',
                        str(tmp_path / 'masks'), '--out', str(tmp_path / 's.png')],
                       cwd=repo_root, capture_output=True, text=True)
    assert r.returncode == 2 and 'Traceback' not in r.stderr
    assert f'{bad / "00000.png"}: mask size {W}x{H + 2} differs' in r.stderr
    assert not os.path.exists(tmp_path / 's.png')
    r = subprocess.run([sys.executable, '-m', 'scripts.visualize', '--frames', jpg, '--masks', ann,
                        '--out', str(tmp_path / 'x.mp4')], cwd=repo_root, capture_output=True,
                       text=True)
    assert r.returncode == 2 and '2 videos selected for one video file' in r.stderr


def test_pick_columns_keeps_the_labeled_frames():
    from scripts.visualize import pick_columns
    names = [f'{i:05d}.jpg' for i in range(12)]
    even = pick_columns(names, 6, set())
    assert even == [names[i] for i in (0, 2, 4, 7, 9, 11)]
    cols = pick_columns(names, 6, {names[3], names[8]})
    assert len(cols) == 6 and names[3] in cols and names[8] in cols
    assert cols == sorted(cols)
    assert pick_columns(names, 2, {names[1], names[5], names[10]}) == [names[1], names[10]]
    assert pick_columns(names[:3], 6, {names[1]}) == names[:3]


def test_contact_sheet_shows_the_frames_of_a_sparse_folder(tmp_path, davis):
    """A folder labeling only frame 1 (not on the even 3-column grid 0, 2, 4) puts it on the
    sheet: its column shows that label's colour in the sparse row."""
    frames, gt = davis
    sparse = tmp_path / 'sparse' / 'davis_000'
    sparse.mkdir(parents=True)
    one = np.zeros((H, W), np.uint8)
    one[5:15, 5:15] = 3
    write_mask(str(sparse / '00001.png'), one, DAVIS_PALETTE)
    out = tmp_path / 'sheet.png'
    assert main(['--frames', frames, '--masks', gt, '--masks', str(tmp_path / 'sparse'),
                 '--videos', 'davis_000', '--columns', '3', '--height', str(H), '--alpha', '1',
                 '--contour', '0', '--out', str(out)]) == 0
    sheet = np.asarray(Image.open(out).convert('RGB'))
    th = min(32, max(12, H // 4))
    row2 = sheet[th + 6 + 2 + H + 2:th + 6 + 2 + 2 * H + 2, -(3 * W + 4):]
    cells = [row2[:, c * (W + 2):c * (W + 2) + W] for c in range(3)]
    hits = [bool((cell[5:15, 5:15] == DAVIS_PALETTE[3]).all()) for cell in cells]
    assert hits.count(True) == 1
