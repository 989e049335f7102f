"""Concurrency of the pseudo-label bank: writers rewrite PNGs while data-loader-like readers
read them, for a bounded time; no reader may ever meet an unreadable or partial PNG.

Writers use util.image_io.write_mask, the write path of the trainer's bank update
(phase2.bank_writer.BankWriter.rewrite_frames), one process per video as the trainer assigns
them (crc32(video) % writers). Readers list each video folder as the training dataset does
(PNG names not starting with '.') and read every mask with util.image_io.read_mask.
A control run with a naive in-place writer shows that the readers do catch partial files.
"""
import json
import os
import subprocess
import sys
import time
import zlib

import numpy as np
import pytest

from util.image_io import read_mask, write_mask

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VIDEOS = [f'video_{i}' for i in range(2, 6)]      # crc32 % 2 gives each writer two
FRAMES = [f'{5 * i:05d}' for i in range(6)]
H, W = 120, 160

COMMON = r'''
import json, os, sys, time, zlib
import numpy as np
from util.image_io import read_mask, write_mask
H, W = 120, 160


def version_mask(v, seed):
    """A mask that encodes its version v in every object pixel, with a noisy shape (so
    PNGs differ in size and a partial file is a truncated zlib stream)."""
    rng = np.random.default_rng(seed)
    m = (rng.random((H, W)) < 0.4).astype(np.uint8) * (1 + v % 250)
    m[0, 0] = 1 + v % 250
    return m
'''

WRITER = COMMON + r'''
bank, seconds, rank, world, naive = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), \
    int(sys.argv[4]), sys.argv[5] == 'naive'
mine = [v for v in sorted(os.listdir(bank)) if zlib.crc32(v.encode()) % world == rank]
end, v, writes = time.time() + seconds, 1, 0
while time.time() < end:
    for video in mine:
        for f in sorted(os.listdir(os.path.join(bank, video))):
            if f.startswith('.'):
                continue
            path = os.path.join(bank, video, f)
            m = version_mask(v, v * 1000 + writes)
            if naive:                       # control: rewrite in place, slowly
                import io
                from PIL import Image
                buf = io.BytesIO()
                img = Image.fromarray(m, mode='P')
                img.putpalette(bytes(768))
                img.save(buf, format='PNG')
                raw = buf.getvalue()
                with open(path, 'wb') as fh:
                    fh.write(raw[:len(raw) // 2])
                    fh.flush()
                    time.sleep(0.002)
                    fh.write(raw[len(raw) // 2:])
            else:
                write_mask(path, m)         # the trainer's bank write path (atomic)
            writes += 1
    v += 1
print(json.dumps({'writes': writes}))
'''

READER = COMMON + r'''
from util.errors import UserError
bank, seconds = sys.argv[1], float(sys.argv[2])
end, reads, bad, missing = time.time() + seconds, 0, [], 0
while time.time() < end:
    for video in sorted(os.listdir(bank)):
        folder = os.path.join(bank, video)
        names = [f for f in os.listdir(folder)
                 if not f.startswith('.') and f.lower().endswith('.png')]
        for f in names:
            path = os.path.join(folder, f)
            try:
                m = read_mask(path)
            except UserError as e:
                if 'file not found' in str(e):
                    missing += 1
                else:
                    bad.append(str(e)[-120:])
                continue
            reads += 1
            ok = m.shape == (H, W) and m[0, 0] > 0 and set(np.unique(m)) <= {0, int(m[0, 0])}
            if not ok:
                bad.append(f'{path}: inconsistent content')
print(json.dumps({'reads': reads, 'bad': bad[:5], 'n_bad': len(bad), 'missing': missing}))
'''


def make_bank(root):
    rng = np.random.default_rng(0)
    for v in VIDEOS:
        for f in FRAMES:
            m = (rng.random((H, W)) < 0.4).astype(np.uint8)
            m[0, 0] = 1
            write_mask(os.path.join(root, v, f + '.png'), m)


def stress(tmp_path, seconds, writers=2, readers=3, naive=False):
    bank = tmp_path / 'bank'
    make_bank(str(bank))
    (tmp_path / 'w.py').write_text(WRITER)
    (tmp_path / 'r.py').write_text(READER)
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=ROOT)
    procs = [subprocess.Popen([sys.executable, str(tmp_path / 'w.py'), str(bank),
                               str(seconds), str(k), str(writers),
                               'naive' if naive else 'atomic'],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for k in range(writers)]
    procs += [subprocess.Popen([sys.executable, str(tmp_path / 'r.py'), str(bank),
                                str(seconds)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
              for _ in range(readers)]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=seconds + 120)
        assert p.returncode == 0, err[-2000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    return bank, results[:writers], results[writers:]


def test_bank_readers_never_see_a_partial_png(tmp_path):
    assert sorted(zlib.crc32(v.encode()) % 2 for v in VIDEOS) == [0, 0, 1, 1]
    bank, writers, readers = stress(tmp_path, seconds=5.0)
    print('writers', writers, 'readers', [(r['reads'], r['n_bad']) for r in readers])
    assert all(w['writes'] > 20 for w in writers), writers           # the bank did change
    for r in readers:
        assert r['reads'] > 50, r
        assert r['n_bad'] == 0, r['bad']
        assert r['missing'] == 0                                      # renames never unlink
    # afterwards: every PNG is a complete palette image, no temporary file is left
    for v in VIDEOS:
        names = sorted(os.listdir(bank / v))
        assert names == [f + '.png' for f in FRAMES]
        for n in names:
            m = read_mask(bank / v / n)
            assert m.shape == (H, W) and set(np.unique(m)) <= {0, int(m[0, 0])}


def test_each_video_has_one_writer():
    """The trainer's owner rule (crc32 % world) gives every video exactly one process."""
    for world in (1, 2, 3, 8):
        owners = {v: [r for r in range(world) if zlib.crc32(v.encode()) % world == r]
                  for v in VIDEOS}
        assert all(len(o) == 1 for o in owners.values())


def test_control_naive_writer_is_caught(tmp_path):
    """The same readers against a writer that rewrites files in place (half, pause, rest):
    they do report unreadable PNGs, so the stress test can fail."""
    for attempt in range(3):              # a loaded machine can let a 2 s window pass clean
        (tmp_path / str(attempt)).mkdir()
        _, _, readers = stress(tmp_path / str(attempt), seconds=2.0, writers=1, readers=2,
                               naive=True)
        if sum(r['n_bad'] for r in readers) > 0:
            break
    assert sum(r['n_bad'] for r in readers) > 0, readers
    assert any('cannot read image' in b for r in readers for b in r['bad'])


@pytest.fixture(autouse=True)
def _timer():
    t = time.time()
    yield
    assert time.time() - t < 60
