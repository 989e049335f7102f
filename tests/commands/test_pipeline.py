"""The whole pipeline (scripts/demo.sh) at the smallest scale: every step's files exist, the
bank keeps the true labels, and each J&F reported is the one of the masks written."""
import csv
import glob
import os
import subprocess

import numpy as np
import pytest

from util.image_io import read_mask
from util.metrics import evaluate


def _videos(folder):
    return sorted(d for d in os.listdir(folder)
                  if not d.startswith('.') and os.path.isdir(os.path.join(folder, d)))


@pytest.mark.slow
def test_demo_pipeline_end_to_end(tmp_path, repo_root):
    out = tmp_path / 'demo'
    env = dict(os.environ, OUT=str(out), ITERS0='2', ITERS1='2', ITERS2='2', BATCH='1', CROP='32',
               STATIC_IMAGES='4',
               DAVIS_VIDEOS='4', DAVIS_VAL='2', YT_VIDEOS='2', FRAMES='5', HEIGHT='48',
               WIDTH='64', DEVICE='cpu')
    r = subprocess.run(['bash', 'scripts/demo.sh'], cwd=repo_root, env=env, text=True,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=1200)
    assert r.returncode == 0, r.stdout[-4000:]
    log = r.stdout

    # every step echoed its command
    for cmd in ('scripts.data.synthetic', 'model.init_weights', 'train.py --id s0 --stage 0',
                'train.py --id phase1',
                'eval_youtube_phase2.py', 'merge_left_right.py', 'train.py --id phase2',
                'eval_davis.py', 'scripts.evaluate'):
        assert f'{cmd}' in log, cmd

    # stage 0 on the static images, then phase 1 and phase 2 from its weights
    s0 = sorted(glob.glob(str(out / 'saves' / '*_s0' / '*_s0_2.pth')))[0]
    for phase in ('phase1', 'phase2'):
        cmd = next(line for line in log.splitlines()
                   if line.startswith(f'+ python train.py --id {phase} '))
        assert f'--load_network {s0} ' in cmd, cmd
    # phase 1 with its EMA teacher; phase 2 with the original's phase-2 flags (no teacher)
    for phase, suffixes in (('phase1', ('_2.pth', '_2_tea.pth', '_checkpoint.pth')),
                            ('phase2', ('_2.pth', '_checkpoint.pth'))):
        for suffix in suffixes:
            assert glob.glob(str(out / 'saves' / f'*_{phase}' / f'*_{phase}{suffix}')), suffix
    assert not glob.glob(str(out / 'saves' / '*_phase2' / '*_tea.pth'))

    davis = out / 'data' / 'DAVIS' / '2017' / 'trainval'
    frames = davis / 'JPEGImages' / '480p'
    train = open(davis / 'ImageSets' / '2017' / 'train.txt').read().split()
    yt_frames = out / 'data' / 'YouTube' / 'train_480p' / 'JPEGImages'
    for suffix, frame_root, videos in (('davis', frames, train),
                                       ('480p', yt_frames, _videos(yt_frames))):
        for p in ('left', 'leftsecgt', 'right', 'rightsecgt'):
            assert _videos(out / 'vos_phase2' / f'phase1_{p}_{suffix}' / 'Annotations') == videos
        bank = out / 'vos_phase2' / f'phase1_merge_{suffix}' / 'Annotations'
        assert _videos(bank) == sorted(videos)
        for v in videos:                   # the bank covers every frame of every video
            names = sorted(f[:-4] for f in os.listdir(frame_root / v))
            assert sorted(f[:-4] for f in os.listdir(bank / v)) == names
            m = read_mask(str(bank / v / (names[0] + '.png')))
            assert m.shape == (48, 64)

    # the bank keeps the true labels of the split's frames
    sparse = out / 'data' / 'DAVIS' / '2017' / 'phase2' / 'davis_gt'
    bank = out / 'vos_phase2' / 'phase1_merge_davis' / 'Annotations'
    for v in _videos(sparse):
        for f in os.listdir(sparse / v):
            assert np.array_equal(read_mask(str(bank / v / f)),
                                  read_mask(str(sparse / v / f))), (v, f)

    # each J&F in the CSVs and in the closing table is that of the masks written
    val = open(davis / 'ImageSets' / '2017' / 'val.txt').read().split()
    table = log[log.index('J&F-Mean    J-Mean'):]
    for name, pred, split, row_name in (
            ('untrained', out / 'eval' / 'untrained', 'val', 'untrained network'),
            ('s0', out / 'eval' / 's0', 'val', 'after stage 0'),
            ('phase1', out / 'eval' / 'phase1', 'val', 'after phase 1'),
            ('phase2', out / 'eval' / 'phase2', 'val', 'after phase 2'),
            ('bank', out / 'vos_phase2' / 'phase1_merge_davis' / 'Annotations', 'train',
             'pseudo-label bank')):
        if split == 'val':
            assert _videos(pred) == sorted(val)
        with open(out / 'eval' / name / f'global_results-{split}.csv') as f:
            row = next(csv.DictReader(f))
        res = evaluate(str(davis), str(pred), split=split, out_dir=str(tmp_path / name),
                       progress=False, verbose=False)
        shown = [f'{res[k]:.3f}' for k in ('J&F-Mean', 'J-Mean', 'F-Mean')]
        assert [row[k] for k in ('J&F-Mean', 'J-Mean', 'F-Mean')] == shown, name
        line = next(ln for ln in table.splitlines() if ln.startswith(row_name))
        assert line.split()[-3:] == shown, line
    assert 'wall time' in table
    # the closing contact sheets: paths printed, one 240-px row per method under a header
    from PIL import Image
    sheets = {out / 'pictures' / f'val_{val[0]}.png': 4,             # gt, untrained, phase 1, 2
              out / 'pictures' / f'bank_{train[0]}.png': 7}          # labels, sparse, 4 passes, bank
    for path, rows in sheets.items():
        assert f': {path}' in log, path
        with Image.open(path) as img:
            assert img.height == 38 + rows * (240 + 2)
