"""InferenceCore: memory schedule, memory bank, frame skipping, labels, readout (CPU, tiny)."""
import numpy as np
import pytest
import torch

from helpers import segment_with_query
from inference_core import InferenceConfig, InferenceCore, MemoryBank
from model.precision import amp_note
from model.aggregate import aggregate
from video_runner import label_tensor, segment_video

T, H, W = 10, 40, 56          # pads to 48 x 64


pytestmark = pytest.mark.usefixtures('one_thread')


@pytest.fixture(scope='module')
def video():
    """Normalised-looking random frames [1, T, 3, H, W] and two object masks on frame 0."""
    g = torch.Generator().manual_seed(1)
    images = torch.randn(1, T, 3, H, W, generator=g)
    mask = np.zeros((H, W), np.uint8)
    mask[5:20, 5:25] = 1
    mask[22:35, 30:50] = 2
    return images, mask


def run_core(net, images, mask, label_idx=0, req_frames=None, **settings):
    core = InferenceCore(net, images, 2, InferenceConfig(**settings), req_frames=req_frames)
    core.interact(label_tensor(mask, 2), label_idx, T)
    return core


@pytest.mark.parametrize('style, every, label, include_last, frames, temp', [
    ('davis', 5, 0, False, [0, 5], None),
    ('davis', 1, 0, False, list(range(9)), None),          # frame 9 (last) never
    ('davis', 5, 2, False, [2, 5], None),                  # index % 5 == 0
    ('youtube', 5, 2, False, [2, 7], None),                # 5 frames since the last one
    ('youtube', 1, 2, False, list(range(2, 9)), None),
    ('youtube', 3, 0, False, [0, 3, 6], None),             # 9 is the last frame
    ('davis', 5, 0, True, [0, 5], 8),                      # previous frame kept as temp
    ('davis', 4, 0, True, [0, 4, 8], None),                # frame 8 permanent: no temp
])
def test_memory_schedule(net, video, style, every, label, include_last, frames, temp):
    images, mask = video
    core = run_core(net, images, mask, label, mem_style=style, mem_every=every,
                    include_last=include_last)
    assert core.mem_frames == frames
    assert core.mem.temp_frame == temp
    mk, mv = core.mem.view()
    hw = (48 // 16) * (64 // 16)
    n = len(frames) + (temp is not None)
    assert mk.shape == (1, 64, n * hw) and mv.shape == (2, 512, n * hw)
    # every frame from the label on is segmented, none before it
    assert [p is not None for p in core.prob] == [i >= label for i in range(T)]


def test_memory_bank_grows_and_keeps_content():
    bank = MemoryBank(2, 4, 3, hw=5, capacity=2, device='cpu', dtype=torch.float32)
    keys = [torch.full((1, 4, 5), float(i)) for i in range(5)]
    vals = [torch.full((2, 3, 5), 10.0 + i) for i in range(5)]
    bank.add(keys[0], vals[0], 0)
    bank.add(keys[1], vals[1], 1, temp=True)
    assert len(bank) == 2 and bank.temp_frame == 1
    for i in (2, 3, 4):                        # permanent adds drop the temp entry, grow x2
        bank.add(keys[i], vals[i], i)
    assert bank.frames == [0, 2, 3, 4] and bank.temp_frame is None and bank.cap >= 4
    mk, mv = bank.view()
    assert torch.equal(mk, torch.cat([keys[i] for i in (0, 2, 3, 4)], 2))
    assert torch.equal(mv, torch.cat([vals[i] for i in (0, 2, 3, 4)], 2))


def test_unneeded_frames_are_skipped(net, video):
    images, mask = video
    core = run_core(net, images, mask, mem_style='youtube', mem_every=3, req_frames={4, 9})
    assert core.mem_frames == [0, 3, 6]
    done = [i for i, p in enumerate(core.prob) if p is not None]
    assert done == [0, 3, 4, 6, 9] and core.processed == 5


@torch.inference_mode()
def test_readout_matches_network(net, video):
    """The core's strided memory view + top-k readout equals the dense reference (helpers)."""
    images, mask = video
    core = run_core(net, images, mask, mem_every=2)
    feats = core._encode_key(5)
    mine = core._segment(feats)
    _, k16, v16, _, f8, f4 = feats
    mk, mv = core.mem.view()
    ref = segment_with_query(net, mk.contiguous(), mv.contiguous(), k16, v16, f8, f4)
    ref = aggregate(ref, dim=0, return_logits=False)
    assert torch.allclose(mine, ref, atol=1e-5)
    assert torch.allclose(mine.sum(0), torch.ones_like(mine[0]), atol=1e-4)


def test_late_object_and_second_label(net, video):
    """Object 2 labeled only at frame 4: zero before, its label there, object 1 kept outside."""
    images, mask = video
    only1 = (mask == 1).astype(np.uint8)
    ref = InferenceCore(net, images, 2, InferenceConfig(mem_every=2))
    ref.interact(label_tensor(only1, 2), 0, T)
    core = InferenceCore(net, images, 2, InferenceConfig(mem_every=2))
    core.interact(label_tensor(only1, 2), 0, 4)
    for i in range(4):
        assert core.prob[i][2].abs().max() == 0
        assert 2 not in core.get_mask(i)
        assert np.array_equal(core.get_mask(i), ref.get_mask(i))
    second = np.where(mask == 2, 2, 0).astype(np.uint8)
    core.interact(label_tensor(second, 2), 4, T, objects=[2])
    out = core.get_mask(4)
    assert np.array_equal(out == 2, mask == 2)                 # the new label is taken
    outside = mask != 2
    assert np.array_equal(out[outside], ref.get_mask(4)[outside])   # object 1 keeps its guess
    assert core.enabled == {1, 2}
    assert core.mem_frames == [0, 2, 4, 6, 8]      # frame 3 ended the first pass


def test_get_mask_sizes_and_labeled_frame(net, video):
    images, mask = video
    core = run_core(net, images, mask, mem_every=5)
    assert core.prob[0].shape == (3, 1, 48, 64)                # padded, background first
    assert np.array_equal(core.get_mask(0), mask)              # the label comes back as is
    big = core.get_mask(0, (80, 112))
    assert big.shape == (80, 112) and big.dtype == np.uint8
    assert set(np.unique(big)) <= {0, 1, 2}


def test_amp_is_fp32_on_a_cpu_without_native_bf16(net, video, monkeypatch):
    from model import precision
    monkeypatch.setattr(precision, 'cpu_native_bf16', lambda: False)
    images, mask = video
    core = InferenceCore(net, images, 2, InferenceConfig(amp=True))
    assert core.amp is False and core.mem_dtype == torch.float32
    assert 'fp32' in amp_note('cpu', True) and amp_note('cpu', False) is None


def test_segment_video_maps_ids_back(net, video):
    from dataset.eval_dataset import build_video
    images, mask = video
    raw = np.select([mask == 1, mask == 2], [7, 3], 0).astype(np.uint8)   # ids {3, 7}
    v = build_video('v', images[0], [f'{i:05d}' for i in range(T)], (H, W), b'\0' * 768,
                    [(2, raw)], complete=True, outputs=None)
    assert v.object_ids == [3, 7]
    masks, n, secs, core = segment_video(net, v, InferenceConfig(mem_every=5))
    assert sorted(masks) == list(range(2, T)) and n == T - 2 and secs > 0
    assert np.array_equal(masks[2], raw)
    assert all(set(np.unique(m)) <= {0, 3, 7} for m in masks.values())


def test_a_label_propagates_up_to_the_next_label_inclusive(net, video):
    """STCN's YouTube-VOS loop: object 1 (labeled at 0) propagates through frame 4, where object
    2 is labeled; frame 3 is a memory frame of that first pass (mem_every 1), object 1 keeps
    its propagated mask outside object 2 at frame 4, and every frame counts once."""
    from dataset.eval_dataset import build_video
    images, mask = video
    only1 = np.where(mask == 1, 1, 0).astype(np.uint8)
    only2 = np.where(mask == 2, 2, 0).astype(np.uint8)
    v = build_video('v', images[0], [f'{i:05d}' for i in range(T)], (H, W), b'\0' * 768,
                    [(0, only1), (4, only2)], complete=False, outputs=None)
    masks, n, _, core = segment_video(net, v, InferenceConfig(mem_every=1, mem_style='youtube'))
    ref = InferenceCore(net, images, 2, InferenceConfig(mem_every=1, mem_style='youtube'))
    ref.interact(label_tensor(only1, 2), 0, 5)
    first_pass = ref.get_mask(4)
    ref.interact(label_tensor(only2, 2), 4, T, objects=[2])
    assert 3 in core.mem_frames and core.mem_frames == ref.mem_frames
    assert n == T
    for i in range(T):
        assert np.array_equal(masks[i], ref.get_mask(i))
    outside = mask != 2
    assert np.array_equal(masks[4] == 2, mask == 2)
    assert np.array_equal(masks[4][outside], first_pass[outside])
