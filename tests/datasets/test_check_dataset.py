"""scripts.data.check_dataset: clean synthetic trees pass; each kind of breakage is named with its file."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from scripts.data.check_dataset import check_dataset, main
from util.errors import UserError
from util.image_io import DAVIS_PALETTE, write_mask
from scripts.data.synthetic_data import generate

H, W = 48, 64


@pytest.fixture(scope='module')
def pristine(tmp_path_factory):
    out = tmp_path_factory.mktemp('pristine')
    generate(out, 'davis', videos=3, frames=5, height=H, width=W, objects=2, val_videos=1)
    generate(out, 'youtube', videos=2, frames=5, height=H, width=W, objects=2, val_videos=2)
    return out


@pytest.fixture
def data(pristine, tmp_path):
    """A fresh copy of the synthetic DAVIS and YouTube trees; returns the two layout roots."""
    shutil.copytree(pristine, tmp_path / 'd')
    return str(tmp_path / 'd' / 'DAVIS'), str(tmp_path / 'd' / 'YouTube')


def tv(davis, kind, video, name=''):
    """A path in DAVIS 2017 trainval: kind 'JPEGImages' or 'Annotations'."""
    return os.path.join(davis, '2017', 'trainval', kind, '480p', video, name)


def about(problems, path, *words):
    """The problem lines naming `path` that contain every word."""
    path = str(path).rstrip('/')
    return [p for p in problems if p.startswith(path + ':') and all(w in p for w in words)]


def davis_split(davis):
    return os.path.join(davis, '2017', 'davis_rand_2frames.json'), \
        os.path.join(davis, '2017', 'phase2', 'davis_gt')


def yt_split(yt):
    return os.path.join(yt, 'yv_rand_2frames.json'), os.path.join(yt, 'phase2', 'yv_gt_480p')


def test_clean_trees_have_no_problems(data):
    davis, yt = data
    assert check_dataset(davis, 'davis') == []
    split, sparse = davis_split(davis)
    assert check_dataset(davis, 'davis', split_json=split, sparse=sparse, workers=2) == []
    split, sparse = yt_split(yt)
    assert check_dataset(yt, 'youtube', split_json=split, sparse=sparse) == []
    assert check_dataset(os.path.join(yt, 'train_480p'), 'generic', split_json=split,
                         sparse=sparse) == []


def test_truncated_jpeg_and_corrupt_png(data):
    davis, _ = data
    jpg = tv(davis, 'JPEGImages', 'davis_000', '00002.jpg')
    raw = open(jpg, 'rb').read()
    open(jpg, 'wb').write(raw[:len(raw) // 2])
    png = tv(davis, 'Annotations', 'davis_001', '00003.png')
    raw = open(png, 'rb').read()
    i = raw.find(b'IDAT') + 8                     # scramble compressed pixel data
    open(png, 'wb').write(raw[:i] + bytes(b ^ 0xFF for b in raw[i:i + 20]) + raw[i + 20:])
    probs = check_dataset(davis, 'davis')
    assert about(probs, jpg, 'cannot decode')
    assert about(probs, png, 'cannot decode')
    assert len(probs) == 2, probs


def test_wrong_size_mask_and_mask_without_frame(data):
    davis, _ = data
    small = tv(davis, 'Annotations', 'davis_002', '00001.png')
    write_mask(small, np.ones((H // 2, W // 2), np.uint8))
    orphan = tv(davis, 'Annotations', 'davis_002', '00042.png')
    write_mask(orphan, np.ones((H, W), np.uint8))
    probs = check_dataset(davis, 'davis')
    assert about(probs, small, f'{W // 2}x{H // 2}', f'{W}x{H}', '00001.jpg')
    assert about(probs, orphan, 'without a matching frame')
    assert len(probs) == 2, probs


def test_rgb_masks_say_whether_they_map_to_the_palette(data):
    davis, _ = data
    on = tv(davis, 'Annotations', 'davis_000', '00001.png')
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[:10, :10] = DAVIS_PALETTE[1]
    rgb[20:, 30:] = DAVIS_PALETTE[2]
    Image.fromarray(rgb).save(on)
    off = tv(davis, 'Annotations', 'davis_000', '00002.png')
    rgb[20:, 30:] = (1, 2, 3)                     # not a DAVIS colour
    Image.fromarray(rgb).save(off)
    probs = check_dataset(davis, 'davis')
    assert about(probs, on, 'RGB', 'map unambiguously', '[0, 1, 2]')
    assert about(probs, off, 'RGB', 'do not map', '(1, 2, 3)')
    assert len(probs) == 2, probs


def test_empty_labels_where_required(data):
    davis, yt = data
    first = tv(davis, 'Annotations', 'davis_001', '00000.png')
    write_mask(first, np.zeros((H, W), np.uint8))
    later = tv(davis, 'Annotations', 'davis_001', '00003.png')   # later frames may be empty
    write_mask(later, np.zeros((H, W), np.uint8))
    probs = check_dataset(davis, 'davis')
    assert about(probs, first, 'first-frame', 'no object')
    assert not about(probs, later)
    # YouTube valid: every annotated frame is a first appearance and must show its object
    ann = os.path.join(yt, 'valid', 'Annotations', 'yt_valid_000')
    yv = os.path.join(ann, sorted(os.listdir(ann))[-1])
    write_mask(yv, np.zeros((H, W), np.uint8))
    probs = check_dataset(yt, 'youtube')
    assert about(probs, yv, 'no object')


def test_missing_frame_folder_and_listed_video(data):
    davis, _ = data
    gone = tv(davis, 'JPEGImages', 'davis_001')
    shutil.rmtree(gone)
    val = os.path.join(davis, '2017', 'trainval', 'ImageSets', '2017', 'val.txt')
    with open(val, 'a') as f:
        f.write('ghost\n')
    probs = check_dataset(davis, 'davis')
    assert about(probs, gone, 'frame folder missing')
    assert about(probs, tv(davis, 'JPEGImages', 'ghost'), 'missing', 'val.txt')
    assert len(probs) == 2, probs


def test_split_json_naming_missing_video_frame_or_empty_label(data):
    davis, _ = data
    split, sparse = davis_split(davis)
    sp = json.load(open(split))
    v = sorted(sp)[0]
    sp[v] = [sp[v][0], '00042.jpg']
    sp['no_such_video'] = ['00000.jpg']
    bad = os.path.join(str(davis), 'bad_split.json')
    json.dump(sp, open(bad, 'w'))
    empty = tv(davis, 'Annotations', v, sp[v][0].replace('.jpg', '.png'))
    write_mask(empty, np.zeros((H, W), np.uint8))
    probs = check_dataset(davis, 'davis', split_json=bad)
    assert about(probs, bad, 'no_such_video', 'does not exist')
    assert about(probs, bad, v, '00042.jpg', 'does not exist')
    assert about(probs, empty, 'no object')
    # a broken JSON file is one problem naming it, not a crash
    open(bad, 'w').write('{"a": ')
    assert about(check_dataset(davis, 'davis', split_json=bad), bad, 'JSON')


def test_sparse_folder_problems(data):
    _, yt = data
    split, sparse = yt_split(yt)
    v = sorted(os.listdir(sparse))[0]
    os.makedirs(os.path.join(sparse, 'stray'))
    stray = os.path.join(sparse, 'stray', '00000.png')
    write_mask(stray, np.ones((H, W), np.uint8))
    no_frame = os.path.join(sparse, v, '00099.png')
    write_mask(no_frame, np.ones((H, W), np.uint8))
    pngs = sorted(f for f in os.listdir(os.path.join(sparse, v)) if f != '00099.png')
    wrong = os.path.join(sparse, v, pngs[0])
    write_mask(wrong, np.ones((H + 16, W), np.uint8))
    probs = check_dataset(yt, 'youtube', split_json=split, sparse=sparse)
    assert about(probs, os.path.join(sparse, 'stray'), 'not in the frames folder')
    assert about(probs, no_frame, 'frame does not exist')
    assert about(probs, wrong, f'{W}x{H + 16}')
    assert about(probs, no_frame, 'not a labeled frame')


def test_meta_json_inconsistent_with_annotations(data):
    _, yt = data
    meta_path = os.path.join(yt, 'valid', 'meta.json')
    meta = json.load(open(meta_path))
    v = 'yt_valid_000'
    objs = meta['videos'][v]['objects']
    early = sorted(objs, key=lambda o: objs[o]['frames'][0])[0]   # appears on frame 00000
    objs[early]['frames'] = objs[early]['frames'][1:]             # meta now says: later
    objs['77'] = {'category': 'cup', 'frames': ['00000']}         # not in any mask
    meta['videos']['ghost_video'] = {'objects': {'1': {'frames': ['00000']}}}
    json.dump(meta, open(meta_path, 'w'))
    ann = os.path.join(yt, 'valid', 'Annotations', v)
    probs = check_dataset(yt, 'youtube')
    assert about(probs, os.path.join(ann, '00000.png'), f'object {early}', 'meta.json')
    assert about(probs, os.path.join(ann, '00000.png'), 'object 77 absent')
    assert about(probs, os.path.join(yt, 'valid', 'JPEGImages', 'ghost_video'),
                 'missing', 'meta.json')
    # a video on disk that meta.json does not list
    del meta['videos']['yt_valid_001']
    json.dump(meta, open(meta_path, 'w'))
    probs = check_dataset(yt, 'youtube')
    assert about(probs, os.path.join(yt, 'valid', 'JPEGImages', 'yt_valid_001'),
                 'not in', 'meta.json')


def test_youtube_missing_folders_and_all_frames(data):
    _, yt = data
    shutil.rmtree(os.path.join(yt, 'train_480p', 'Annotations'))
    lost = os.path.join(yt, 'all_frames', 'valid_all_frames', 'JPEGImages', 'yt_valid_001',
                        '00005.jpg')
    os.remove(lost)
    probs = check_dataset(yt, 'youtube')
    assert about(probs, os.path.join(yt, 'train_480p', 'Annotations'), 'folder missing')
    assert about(probs, lost, 'missing')


def test_several_problems_all_listed_by_the_cli(data, capsys):
    davis, _ = data
    broken = []
    for v in ('davis_000', 'davis_001', 'davis_002'):
        jpg = tv(davis, 'JPEGImages', v, '00004.jpg')
        open(jpg, 'wb').write(open(jpg, 'rb').read()[:100])
        broken.append(jpg)
    small = tv(davis, 'Annotations', 'davis_000', '00002.png')
    write_mask(small, np.ones((8, 8), np.uint8))
    broken.append(small)
    assert main(['--root', davis, '--layout', 'davis']) == 1
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 5, lines
    for path, line in zip(sorted(broken), sorted(lines[:4])):
        assert line.startswith(path + ':')
    assert lines[-1].startswith('4 problems found')
    assert main(['--root', davis, '--layout', 'davis', '--max_problems', '1']) == 1
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and '3 more' in lines[1] and lines[2].startswith('4 problems')


def test_cli_exit_codes(data, tmp_path, repo_root):
    davis, _ = data

    def run(*args):
        return subprocess.run([sys.executable, '-m', 'scripts.data.check_dataset', *args],
                              cwd=repo_root, capture_output=True, text=True)
    r = run('--root', davis, '--layout', 'davis')
    assert r.returncode == 0 and r.stdout.startswith('no problems found'), r.stdout + r.stderr
    r = run('--root', str(tmp_path / 'nowhere'), '--layout', 'davis')
    assert r.returncode == 2 and 'nowhere' in r.stderr
    r = run('--root', davis, '--layout', 'davis', '--split_json', str(tmp_path / 'x.json'))
    assert r.returncode == 2 and 'x.json' in r.stderr
    r = run('--root', davis, '--layout', 'bogus')
    assert r.returncode == 2
    shutil.rmtree(tv(davis, 'JPEGImages', 'davis_002'))
    r = run('--root', davis, '--layout', 'davis')
    assert r.returncode == 1 and 'davis_002' in r.stdout
    with pytest.raises(UserError):
        check_dataset(davis, 'davis', sparse=str(tmp_path / 'none'))


def test_generic_layout(tmp_path):
    root = tmp_path / 'g'
    img = np.full((H, W, 3), 100, np.uint8)
    for t in range(3):
        os.makedirs(root / 'JPEGImages' / 'v', exist_ok=True)
        Image.fromarray(img).save(root / 'JPEGImages' / 'v' / f'{t:05d}.jpg')
    m = np.zeros((H, W), np.uint8)
    write_mask(root / 'Annotations' / 'v' / '00000.png', m)       # first label: empty
    write_mask(root / 'Annotations' / 'v' / '00007.png', m + 1)   # no such frame
    os.makedirs(root / 'JPEGImages' / 'w')                        # no frames, no labels
    probs = check_dataset(root, 'generic')
    assert about(probs, root / 'Annotations' / 'v' / '00000.png', 'no object')
    assert about(probs, root / 'Annotations' / 'v' / '00007.png', 'matching frame')
    assert about(probs, root / 'JPEGImages' / 'w', 'no frames')
    assert about(probs, root / 'Annotations' / 'w', 'annotation folder missing')
    assert len(probs) == 4, probs
