"""--max_mem_frames: the memory keeps the labeled frames and the N most recent other memory
frames; every eval run prints its peak memory beside its FPS (CPU, tiny)."""
import contextlib
import io
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

import eval_davis
import eval_youtube
import eval_youtube_bank
import inference_core
import video_runner
from dataset.eval_dataset import build_video
from inference_core import InferenceConfig, InferenceCore, MemoryBank
from util.errors import UserError
from helpers import small_trees
from scripts.data.synthetic_video import make_video
from video_runner import label_tensor, segment_video

pytestmark = pytest.mark.usefixtures('one_thread')

T, H, W = 16, 40, 56          # pads to 48 x 64: 3 x 4 positions per memory frame
HW = 12
PEAK = re.compile(r'FPS \(IO excluded[^\n]*; peak memory (\d+\.\d) MiB \(CPU peak RSS')


@pytest.fixture(scope='module')
def scene():
    """A synthetic video of two objects, object 2 entering at frame 6: normalised frames
    [1, T, 3, H, W] and index masks."""
    from dataset.range_transform import im_normalization
    imgs, masks = make_video(np.random.default_rng(4), T, H, W, 2, enter=[0, 6])
    frames = torch.stack([im_normalization(torch.from_numpy(f).permute(2, 0, 1).float() / 255)
                          for f in imgs])
    return frames[None], masks


class Recorder(InferenceCore):
    """InferenceCore noting the memory frames (labeled and not) at every readout."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.readouts = []

    def _read_memory(self, k16):
        self.readouts.append((list(self.mem.frames), self.mem.temp_frame, len(self.mem)))
        return super()._read_memory(k16)


def test_memory_bank_remove_keeps_the_other_slots():
    bank = MemoryBank(2, 4, 3, hw=5, capacity=2, device='cpu', dtype=torch.float32)
    for i in range(4):
        bank.add(torch.full((1, 4, 5), float(i)), torch.full((2, 3, 5), 10.0 + i), i)
    bank.add(torch.full((1, 4, 5), 9.0), torch.full((2, 3, 5), 19.0), 9, temp=True)
    bank.remove(1)
    assert bank.frames == [0, 2, 3] and bank.temp_frame == 9 and len(bank) == 4
    keys, values = bank.view()
    assert keys[0, 0].view(4, 5)[:, 0].tolist() == [0.0, 2.0, 3.0, 9.0]
    assert values[1, 2].view(4, 5)[:, 0].tolist() == [10.0, 12.0, 13.0, 19.0]


@pytest.mark.parametrize('style, every, include_last, kept', [
    ('davis', 1, False, [0, 12, 13, 14]),                   # label 0 + the last 3 (15: last)
    ('youtube', 2, True, [0, 10, 12, 14]),                  # odd frames: temporary entries
])
def test_bound_holds_and_keeps_the_newest(net, scene, style, every, include_last, kept):
    images, masks = scene
    n = 3
    core = Recorder(net, images, 2, InferenceConfig(mem_every=every, mem_style=style,
                                                    include_last=include_last, max_mem_frames=n))
    core.interact(label_tensor(masks[0], 2), 0, T)
    assert core.mem_frames == kept
    extra = 1 if include_last else 0
    for frames, temp, size in core.readouts:
        assert frames[0] == 0 and size <= 1 + n + extra
        assert frames[1:] == sorted(frames[1:])              # first in, first out
    assert max(size for _, _, size in core.readouts) == 1 + n + extra
    assert core.mem.cap <= n + 2                             # allocated for the bound only
    # the same probabilities as the unbounded run up to the first eviction, not after it
    ref = InferenceCore(net, images, 2, InferenceConfig(mem_every=every, mem_style=style,
                                                        include_last=include_last))
    ref.interact(label_tensor(masks[0], 2), 0, T)
    assert ref.mem_frames == list(range(0, 15, every))
    first_out = every * (n + 1) + 1                           # read after the first eviction
    for i in range(first_out):
        assert torch.equal(core.prob[i], ref.prob[i]), i
    assert any(not torch.equal(core.prob[i], ref.prob[i]) for i in range(first_out, T))


def test_object_added_later_keeps_its_labeled_frame(net, scene, monkeypatch):
    """YouTube-style: object 2 first labeled at frame 6; both labeled frames stay in memory
    however many frames follow, and at most 2 + N frames are read."""
    images, masks = scene
    only1 = np.where(masks[0] == 1, 1, 0).astype(np.uint8)
    only2 = np.where(masks[6] == 2, 2, 0).astype(np.uint8)
    video = build_video('v', images[0], [f'{i:05d}' for i in range(T)], (H, W), b'\0' * 768,
                        [(0, only1), (6, only2)], complete=False, outputs=None)
    monkeypatch.setattr(video_runner, 'InferenceCore', Recorder)
    out, n, _, core = segment_video(net, video, InferenceConfig(
        mem_every=1, mem_style='youtube', max_mem_frames=2))
    assert isinstance(core, Recorder) and n == T
    assert core.labeled == {0, 6} and core.mem_frames == [0, 6, 13, 14]
    for frames, _, size in core.readouts:
        assert size <= 2 + 2 and frames[0] == 0
        assert 6 in frames or max(frames) < 6               # frame 6 stays once labeled
    assert np.array_equal(out[6] == 2, masks[6] == 2)        # the new label is taken
    assert 2 in out[T - 1]                                   # and still tracked at the end


def test_without_the_bound_nothing_changes(net, scene):
    """N at least the number of memory frames: the masks of the unbounded run, bit for bit."""
    images, masks = scene
    ref = InferenceCore(net, images, 2, InferenceConfig(mem_every=4))
    ref.interact(label_tensor(masks[0], 2), 0, T)
    core = InferenceCore(net, images, 2, InferenceConfig(mem_every=4, max_mem_frames=3))
    core.interact(label_tensor(masks[0], 2), 0, T)
    assert core.mem_frames == ref.mem_frames == [0, 4, 8, 12]
    assert all(torch.equal(a, b) for a, b in zip(core.prob, ref.prob))
    with pytest.raises(ValueError):
        InferenceCore(net, images, 2, InferenceConfig(max_mem_frames=0))


# ---------------------------------------------------------------------- the eval scripts

@pytest.fixture(scope='module')
def data(tmp_path_factory):
    return small_trees(tmp_path_factory.mktemp('bound'), frames=8, seed=5)


def run_printed(main, argv):
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        stats = main(argv)
    return stats, buf.getvalue()


def test_flag_reaches_the_core_and_peak_memory_is_printed(data, ckpt, tmp_path, monkeypatch):
    seen = []
    real = inference_core.InferenceCore

    def spy(net, images, k, config, **kw):
        seen.append(config.max_mem_frames)
        return real(net, images, k, config, **kw)
    monkeypatch.setattr(video_runner, 'InferenceCore', spy)
    davis = ['--model', ckpt, '--davis_path', str(data / 'DAVIS'), '--device', 'cpu']
    out = str(tmp_path / 'd')
    first = ['--output', out, '--mem_every', '1', '--max_mem_frames', '2']
    stats, printed = run_printed(eval_davis.main, davis + first)
    assert seen == [2] and stats['peak_memory'] > 0
    mib = float(PEAK.search(printed).group(1))
    assert abs(mib - stats['peak_memory'] / 2 ** 20) < 0.1
    assert re.search(r'frames segmented in [\d.]+ s: [\d.]+ FPS \(IO excluded\); \d+ masks '
                     r'written to ', printed)                 # the FPS line as it was
    # --resume with every video complete: the peak memory all the same
    _, printed = run_printed(eval_davis.main, davis + first + ['--resume'])
    assert '0 videos, 0 frames segmented; peak memory' in printed and len(seen) == 1
    # the bank (four passes) and the YouTube-VOS benchmark
    yt = ['--model', ckpt, '--yv_path', str(data / 'YouTube'), '--device', 'cpu',
          '--max_mem_frames', '1']
    _, printed = run_printed(eval_youtube_bank.main, yt + ['--output', str(tmp_path / 'b'),
                                                           '--res', '-1'])
    assert set(seen[1:]) == {1} and len(seen) > 2 and PEAK.search(printed)
    done = len(seen)
    _, printed = run_printed(eval_youtube.main, yt + ['--output', str(tmp_path / 'y')])
    assert seen[done:] == [1] and PEAK.search(printed)


def test_refuses_n_below_1(data, ckpt, tmp_path, repo_root):
    with pytest.raises(UserError, match='--max_mem_frames must be >= 1'):
        eval_davis.main(['--davis_path', str(data / 'DAVIS'), '--output', str(tmp_path / 'o'),
                         '--max_mem_frames', '0'])
    r = subprocess.run([sys.executable, 'eval_generic.py', '--model', ckpt, '--data_path',
                        str(data / 'DAVIS'), '--output', str(tmp_path / 'g'),
                        '--max_mem_frames', '-1'],
                       cwd=repo_root, capture_output=True, text=True)
    assert r.returncode == 2, r.stderr[-2000:]
    assert r.stderr.strip() == 'error: --max_mem_frames must be >= 1, got -1'
    assert not os.path.exists(tmp_path / 'g')
