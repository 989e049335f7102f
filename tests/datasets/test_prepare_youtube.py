"""scripts.data.prepare_youtube: resized trees pass check_dataset, keep every label id and palette,
skip complete videos, and stop on a corrupt file with one line, leaving only whole videos."""
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from scripts.data.check_dataset import check_dataset
from scripts.data.prepare_youtube import prepare, target_size
from scripts.data.synthetic_data import generate

H, W, SIZE = 40, 72, 24          # synthetic frames 72x40 -> 43x24


@pytest.fixture(scope='module')
def raw(tmp_path_factory):
    return generate(tmp_path_factory.mktemp('yt'), 'youtube', videos=3, frames=4, height=H,
                    width=W, objects=2, val_videos=1)


@pytest.fixture
def tree(raw, tmp_path):
    """A copy of the synthetic YouTube tree without train_480p (to be made from train/)."""
    root = tmp_path / 'YouTube'
    shutil.copytree(raw['root'], root)
    shutil.rmtree(root / 'train_480p')
    return root


def _mask_ids(path):
    with Image.open(path) as img:
        return img.mode, img.getpalette(), np.unique(np.asarray(img)).tolist()


def test_target_size_shorter_side():
    assert target_size(1280, 720, 480) == (853, 480)
    assert target_size(720, 1280, 480) == (480, 853)
    assert target_size(100, 60, 0) == (100, 60)


def test_resized_tree_passes_check_and_keeps_ids(tree, repo_root):
    r = subprocess.run([sys.executable, '-m', 'scripts.data.prepare_youtube', '--src', str(tree / 'train'),
                        '--out', str(tree / 'train_480p'), '--size', str(SIZE), '--workers', '2'],
                       cwd=repo_root, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert '3 videos written, 0 already complete' in r.stdout
    assert 'resizing 100% (3 of 3)' in r.stderr                  # the progress bar
    assert check_dataset(str(tree), 'youtube') == []
    src, out = tree / 'train', tree / 'train_480p'
    for v in sorted(os.listdir(src / 'JPEGImages')):
        assert sorted(os.listdir(out / 'JPEGImages' / v)) == sorted(os.listdir(src / 'JPEGImages' / v))
        for n in os.listdir(out / 'JPEGImages' / v):
            with Image.open(out / 'JPEGImages' / v / n) as img:
                assert img.size == (43, 24) and img.format == 'JPEG'
        for n in os.listdir(src / 'Annotations' / v):
            mode_a, pal_a, ids_a = _mask_ids(src / 'Annotations' / v / n)
            mode_b, pal_b, ids_b = _mask_ids(out / 'Annotations' / v / n)
            assert (mode_b, pal_b) == (mode_a, pal_a) and mode_b == 'P'
            assert ids_b == ids_a                      # every label id kept, none invented
            with Image.open(out / 'Annotations' / v / n) as img:
                assert img.size == (43, 24)
    # a rerun skips the complete videos; a video missing a frame is redone
    os.remove(out / 'JPEGImages' / 'yt_train_001' / '00005.jpg')
    assert prepare(src, out, SIZE) == (1, 2)
    assert os.path.isfile(out / 'JPEGImages' / 'yt_train_001' / '00005.jpg')
    assert check_dataset(str(tree), 'youtube') == []


def test_size_zero_copies_all_frames(tree):
    src = tree / 'all_frames' / 'valid_all_frames'
    out = tree / 'copy' / 'valid_all_frames'
    assert prepare(src, out, 0) == (1, 0)
    for v in os.listdir(src / 'JPEGImages'):
        for n in os.listdir(src / 'JPEGImages' / v):
            assert (out / 'JPEGImages' / v / n).read_bytes() == \
                (src / 'JPEGImages' / v / n).read_bytes()


def test_corrupt_frame_names_it_and_leaves_whole_videos(tree, repo_root):
    bad = tree / 'train' / 'JPEGImages' / 'yt_train_002' / '00010.jpg'
    bad.write_bytes(bad.read_bytes()[:200])
    out = tree / 'train_480p'
    r = subprocess.run([sys.executable, '-m', 'scripts.data.prepare_youtube', '--src', str(tree / 'train'),
                        '--out', str(out), '--size', str(SIZE), '--workers', '1'],
                       cwd=repo_root, capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1].startswith(f'error: {bad}: cannot read image')
    assert 'Traceback' not in r.stderr
    # the videos before it are whole, the broken one absent (frames and masks), no temporary
    # folder left
    for kind in ('JPEGImages', 'Annotations'):
        assert sorted(os.listdir(out / kind)) == ['yt_train_000', 'yt_train_001']
        assert len(os.listdir(out / kind / 'yt_train_001')) == 4


def test_missing_src_is_one_line(tmp_path, repo_root):
    r = subprocess.run([sys.executable, '-m', 'scripts.data.prepare_youtube', '--src', str(tmp_path / 'no'),
                        '--out', str(tmp_path / 'o')], cwd=repo_root, capture_output=True, text=True)
    assert r.returncode == 2 and 'JPEGImages: folder missing' in r.stderr
    assert not os.path.exists(tmp_path / 'o')
