"""Merge of the four intermediate-inference passes (docs/method.md, "The merge rule"), on
hand-made trees.

Each source writes masks filled with its own value, so a merged frame shows where it came from.
"""
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from phase2.merge import merge, merge_video, source_plan
from util.errors import UserError
from util.image_io import read_mask, write_mask

REPO = Path(__file__).resolve().parents[2]
CODE = {'left': 1, 'leftsecgt': 2, 'right': 3, 'rightsecgt': 4, 'gt': 5}
NAME = {v: k for k, v in CODE.items()}
PASSES = ('left', 'leftsecgt', 'right', 'rightsecgt')


def yt_names(n):
    """YouTube-style frame names stepping by 5: 00000, 00005, ..."""
    return [f'{5 * i:05d}' for i in range(n)]


def make_trees(root, videos, full=True, annotations=False):
    """videos: {video: (n_frames, labeled positions)}. Writes gt, the four passes and JPEGImages.

    full=True: every pass writes every frame; False: each pass writes only what it would really
    produce (left from a on, leftsecgt from b on, right up to b, rightsecgt up to a).
    """
    dirs = {'gt': root / 'gt', 'frames': root / 'JPEGImages'}
    for p in PASSES:
        dirs[p] = root / p
    mask = np.zeros((4, 6), np.uint8)
    label = mask + CODE['gt']
    label.flat[1:5] = [CODE[p] for p in PASSES]    # the merge takes only ids the labels hold
    for video, (n, lab) in videos.items():
        names = yt_names(n)
        a, b = lab[0], lab[-1]
        ranges = {'left': range(a, n), 'leftsecgt': range(b, n),
                  'right': range(0, b + 1), 'rightsecgt': range(0, a + 1)}
        for i in lab:
            write_mask(dirs['gt'] / video / f'{names[i]}.png', label)
        for p in PASSES:
            sub = dirs[p] / 'Annotations' if annotations else dirs[p]
            for i in (range(n) if full else ranges[p]):
                write_mask(sub / video / f'{names[i]}.png', mask + CODE[p])
        (dirs['frames'] / video).mkdir(parents=True)
        for nm in names:
            (dirs['frames'] / video / f'{nm}.jpg').write_bytes(b'')
    return dirs


def run_merge(dirs, out, **kw):
    kw.setdefault('frames_dir', dirs['frames'])
    return merge(dirs['gt'], dirs['left'], dirs['leftsecgt'], dirs['right'], dirs['rightsecgt'],
                 out, progress=False, **kw)


def merged_sources(out, video):
    files = sorted((out / 'Annotations' / video).glob('*.png'))     # the original's layout
    srcs = []
    for f in files:
        m = read_mask(f)
        assert (m == m.flat[0]).all() or m.flat[0] == CODE['gt']       # labels: every id
        srcs.append(NAME[int(m.flat[0])])
    return [f.stem for f in files], srcs


L, LS, R, RS, GT = 'left', 'leftsecgt', 'right', 'rightsecgt', 'gt'
CASES = {
    # (n, labeled positions): expected source per frame position
    'gap_odd_a2_b7': ((10, (2, 7)), [RS, RS, GT, L, L, R, R, GT, LS, LS]),
    'gap_even_a2_b8': ((10, (2, 8)), [RS, RS, GT, L, L, R, R, R, GT, LS]),
    'gap_a2_b9': ((10, (2, 9)), [RS, RS, GT, L, L, L, R, R, R, GT]),
    'gap_a1_b3': ((5, (1, 3)), [RS, GT, R, GT, LS]),       # one frame between -> right
    'gap_a0_b3': ((5, (0, 3)), [GT, L, R, GT, LS]),
    'adjacent': ((6, (2, 3)), [RS, RS, GT, GT, LS, LS]),
    'first_and_last': ((7, (0, 6)), [GT, L, L, R, R, R, GT]),
    'single_middle': ((6, (2,)), [RS, RS, GT, LS, LS, LS]),
    'single_first': ((4, (0,)), [GT, LS, LS, LS]),
    'single_last': ((4, (3,)), [RS, RS, RS, GT]),
}


@pytest.mark.parametrize('case', list(CASES))
def test_source_plan(case):
    (n, lab), expected = CASES[case]
    assert source_plan(n, list(lab)) == expected


@pytest.mark.parametrize('case', list(CASES))
def test_merge_video_plan(case):
    (n, lab), expected = CASES[case]
    names = yt_names(n)
    passes = {s: {f: f'/{s}/{f}.png' for f in names} for s in CODE}
    # unsorted input frame list: order must come from the names
    plan = merge_video(names[::-1], [names[i] for i in lab], passes, video='v')
    assert list(plan) == names
    assert [plan[f][0] for f in names] == expected
    assert all(plan[f][1] == f'/{plan[f][0]}/{f}.png' for f in names)


@pytest.mark.parametrize('full', [True, False])
def test_merge_on_disk_frame_by_frame(tmp_path, full):
    videos = {c: CASES[c][0] for c in CASES}
    dirs = make_trees(tmp_path, videos, full=full)
    out = tmp_path / 'out'
    s = run_merge(dirs, out)
    counts = {k: 0 for k in CODE}
    for case, ((n, _), expected) in CASES.items():
        names, srcs = merged_sources(out, case)
        assert names == yt_names(n)
        assert srcs == expected, case
        for x in expected:
            counts[x] += 1
        # byte copies: palette and content identical to the source file
        for nm, src in zip(names, srcs):
            assert (out / 'Annotations' / case / f'{nm}.png').read_bytes() == \
                (dirs[src] / case / f'{nm}.png').read_bytes()
    assert s['videos'] == len(CASES)
    assert s['sources'] == counts
    assert s['frames'] == sum(counts.values())
    assert s['out'] == str(out / 'Annotations')
    assert not [p for p in (out / 'Annotations').iterdir() if p.name.startswith('.')]


def test_frames_dir_and_videos_subset(tmp_path):
    dirs = make_trees(tmp_path, {'va': (6, (1, 4)), 'vb': (5, (2,))}, full=False)
    out = tmp_path / 'out'
    s = run_merge(dirs, out, frames_dir=dirs['frames'], videos=['vb'])
    assert sorted(p.name for p in (out / 'Annotations').iterdir()) == ['vb']
    assert merged_sources(out, 'vb')[1] == [RS, RS, GT, LS, LS]
    assert s['videos'] == 1
    with pytest.raises(UserError, match='vzz'):
        run_merge(dirs, out, videos=['vzz'])


def test_frames_dir_frame_missing_from_every_pass(tmp_path):
    dirs = make_trees(tmp_path, {'va': (6, (1, 3))}, full=True)
    (dirs['frames'] / 'va' / '00030.jpg').write_bytes(b'')   # a 7th frame, after b
    out = tmp_path / 'out'
    with pytest.raises(UserError) as e:
        run_merge(dirs, out, frames_dir=dirs['frames'])
    assert 'leftsecgt' in str(e.value) and '00030.png' in str(e.value)
    assert not out.exists() or not any(out.iterdir())
    with pytest.raises(UserError, match='give --frames_dir'):   # no frames folder to derive
        run_merge(dirs, out, frames_dir=None)


@pytest.mark.parametrize('pass_name,frame', [('left', '00015'), ('right', '00020'),
                                             ('leftsecgt', '00035'), ('rightsecgt', '00000')])
def test_missing_frame_in_pass_writes_nothing(tmp_path, pass_name, frame):
    # 'aaa' is valid and sorts first: it must not be written either
    dirs = make_trees(tmp_path, {'aaa': (5, (1, 3)), 'vid': (8, (2, 5))}, full=False)
    (dirs[pass_name] / 'vid' / f'{frame}.png').unlink()
    out = tmp_path / 'out'
    with pytest.raises(UserError) as e:
        run_merge(dirs, out)
    msg = str(e.value)
    assert f'pass {pass_name}:' in msg and 'vid' in msg and f'{frame}.png' in msg
    assert str(dirs[pass_name]) in msg
    assert not out.exists() or not any(out.iterdir())


def test_frame_the_pass_need_not_provide_may_be_missing(tmp_path):
    dirs = make_trees(tmp_path, {'vid': (8, (2, 5))}, full=True)
    (dirs['left'] / 'vid' / '00030.png').unlink()          # position 6: taken from leftsecgt
    (dirs['rightsecgt'] / 'vid' / '00015.png').unlink()    # position 3: taken from left
    out = tmp_path / 'out'
    run_merge(dirs, out)
    assert merged_sources(out, 'vid')[1] == [RS, RS, GT, L, R, GT, LS, LS]


@pytest.mark.parametrize('n_labels', [0, 3])
def test_bad_label_count(tmp_path, n_labels):
    dirs = make_trees(tmp_path, {'ok': (5, (1, 3)), 'bad': (6, (1, 3))})
    gt = dirs['gt'] / 'bad'
    for f in list(gt.iterdir()):
        f.unlink()
    for i in range(n_labels):
        write_mask(gt / f'{5 * i:05d}.png', np.full((4, 6), 5, np.uint8))
    out = tmp_path / 'out'
    with pytest.raises(UserError, match=re.escape(str(gt))):
        run_merge(dirs, out)
    assert not out.exists() or not any(out.iterdir())


def test_rerun_replaces_video(tmp_path):
    dirs = make_trees(tmp_path, {'vid': (6, (1, 4))})
    out = tmp_path / 'out'
    (out / 'Annotations' / 'vid').mkdir(parents=True)
    (out / 'Annotations' / 'vid' / 'stale.png').write_bytes(b'x')
    (out / 'Annotations' / '.tmp_vid').mkdir()               # left by a killed run
    run_merge(dirs, out)
    names, srcs = merged_sources(out, 'vid')
    assert names == yt_names(6) and srcs == [RS, GT, L, R, GT, LS]
    assert sorted(p.name for p in (out / 'Annotations').iterdir()) == ['vid']


def test_cli_with_annotations_subfolders(tmp_path):
    dirs = make_trees(tmp_path, {'v1': (10, (2, 8)), 'v2': (4, (0,))}, full=False,
                      annotations=True)
    out = tmp_path / 'bank'
    cmd = [sys.executable, str(REPO / 'phase2_scripts' / 'merge_left_right.py'),
           '--gt_dir', str(dirs['gt']), '--left', str(dirs['left']),
           '--leftsecgt', str(dirs['leftsecgt']), '--right', str(dirs['right']),
           '--rightsecgt', str(dirs['rightsecgt']), '--out', str(out),
           '--frames_dir', str(dirs['frames']), '--workers', '2']
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert r.returncode == 0, r.stderr
    assert 'merged 2 videos, 14 frames' in r.stdout
    assert merged_sources(out, 'v1')[1] == CASES['gap_even_a2_b8'][1]
    assert merged_sources(out, 'v2')[1] == [GT, LS, LS, LS]

    # a bad input is one error line naming the pass, the video and the file; exit status 2
    (dirs['right'] / 'Annotations' / 'v1' / '00025.png').unlink()
    r = subprocess.run(cmd + ['--out', str(tmp_path / 'bank2')], capture_output=True,
                       text=True, cwd=tmp_path, timeout=60)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and 'pass right' in lines[0] and 'v1' in lines[0] \
        and '00025.png' in lines[0]
    assert not (tmp_path / 'bank2').exists()
