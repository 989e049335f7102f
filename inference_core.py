"""The propagation engine of every evaluation script: memory bank, top-k readout, aggregation.

One `InferenceCore` per video. Frames arrive in *processing order* (a reversed pass gives the
frames reversed) as normalised images [1, T, 3, H, W]; they are padded to a multiple of 16
here. Objects are indexed 1..K (K = every object of the video, known up front); an object
that has not been labeled yet has zero probability, and its memory values are encoded from
its (empty) mask so the memory always holds K values per position.

Memory (docs/method.md, "Inference"): the labeled frame's key/value always stay in memory.
  mem_style='davis'    frame ti enters memory when ti % mem_every == 0 (ti = processing index)
  mem_style='youtube'  frame ti enters memory when ti - (last memory frame) >= mem_every
  include_last         the previous frame is a temporary entry, replaced at each step
  max_mem_frames N     at most N non-labeled permanent frames: adding one more first drops the
                       oldest of them (first in, first out); labeled frames always stay
The last frame of a pass is never encoded. Frames that are needed neither for memory nor for
output (`req_frames`) are skipped without encoding their key.

No file IO here: video_runner.py runs the videos of a test dataset through a core and writes
the masks; model/precision.py says what --amp means on each device.
"""
import dataclasses
from typing import Optional, Union

import torch
import torch.nn.functional as F

from model.aggregate import aggregate
from model.memory import dense_topk_readout, topk_readout
from model.network import KEY_DIM, VALUE_DIM
from model.precision import amp_context, amp_dtype, amp_memory_format, memory_dtype
from util.tensor_util import argmax_classes, pad_divide_by, unpad

MEM_STYLES = ('davis', 'youtube')


@dataclasses.dataclass(frozen=True)
class InferenceConfig:
    """The settings of a propagation, from the eval scripts' flags (eval_driver)."""
    top_k: int = 20                 # --top: memory entries read per query position
    mem_every: int = 5              # --mem_every
    mem_style: str = 'davis'        # the memory schedule (module docstring), set by the script
    include_last: bool = False      # --include_last
    max_mem_frames: Optional[int] = None    # --max_mem_frames; None keeps every memory frame
    exact_readout: bool = False     # --exact_readout: the dense readout of the original
    amp: Union[bool, str] = False   # --amp: False, True or the --amp_dtype name ('fp16', 'bf16')

    def __post_init__(self):
        if self.mem_style not in MEM_STYLES:
            raise ValueError(f'mem_style must be one of {MEM_STYLES}, got {self.mem_style!r}')
        if self.mem_every < 1:
            raise ValueError('mem_every must be >= 1')
        if self.max_mem_frames is not None and self.max_mem_frames < 1:
            raise ValueError('max_mem_frames must be >= 1 (or None)')


def sync(device):
    if torch.device(device).type == 'cuda':
        torch.cuda.synchronize(device)


class MemoryBank:
    """Keys [1, 64, N] and values of the memory frames, N = slots * hw.

    Values are stored one row per memory position, [N, K * 512] (all objects side by side),
    the layout the top-k readout gathers from; `view()` shows them as [K, 512, N].
    Storage is preallocated in frame slots and doubled when full. The temporary entry (the
    previous frame under include_last) lives in the slot after the last permanent one, so a
    readout is a view of the first (n + temp) slots and nothing is copied per frame.
    """

    def __init__(self, num_objects, key_dim, value_dim, hw, capacity, device, dtype):
        self.k, self.hw, self.value_dim = num_objects, hw, value_dim
        self.cap = max(2, capacity)
        self.keys = torch.empty(1, key_dim, self.cap * hw, device=device, dtype=dtype)
        self.rows = torch.empty(self.cap * hw, num_objects * value_dim, device=device,
                                dtype=dtype)
        self.frames = []          # processing index of each permanent slot
        self.temp_frame = None    # processing index of the temporary entry, if any

    def __len__(self):
        return len(self.frames) + (self.temp_frame is not None)

    def _grow(self, slots):
        if slots <= self.cap:
            return
        cap = max(slots, 2 * self.cap)
        used = len(self) * self.hw
        keys = self.keys.new_empty(self.keys.shape[0], self.keys.shape[1], cap * self.hw)
        rows = self.rows.new_empty(cap * self.hw, self.rows.shape[1])
        keys[..., :used] = self.keys[..., :used]
        rows[:used] = self.rows[:used]
        self.keys, self.rows, self.cap = keys, rows, cap

    def remove(self, i):
        """Drop permanent slot i; the later slots (the temporary entry too) move down one."""
        hw, m = self.hw, len(self) * self.hw
        s = i * hw
        self.keys[..., s:m - hw] = self.keys[..., s + hw:m].clone()
        self.rows[s:m - hw] = self.rows[s + hw:m].clone()
        del self.frames[i]

    def add(self, key, value, frame, temp=False):
        """key [1, 64, hw], value [K, 512, hw]. A permanent entry also drops the temporary one."""
        n = len(self.frames)
        self._grow(n + 1)
        s = slice(n * self.hw, (n + 1) * self.hw)
        self.keys[..., s] = key
        self.rows[s].view(self.hw, self.k, -1).copy_(value.permute(2, 0, 1))
        if temp:
            self.temp_frame = frame
        else:
            self.frames.append(frame)
            self.temp_frame = None

    def used(self):
        """(keys [1, 64, M], value rows [M, K*512]) over the used slots (views, no copy)."""
        m = len(self) * self.hw
        return self.keys[..., :m], self.rows[:m]

    def view(self):
        """(keys [1, 64, M], values [K, 512, M]) over the used slots (views, no copy)."""
        keys, rows = self.used()
        return keys, rows.t().view(self.k, self.value_dim, -1)


class InferenceCore:
    """Propagate labeled frames through one video (see the module docstring).

    net: model.eval_network.STCN (eval mode). images: normalised [1, T, 3, H, W] (or
    [T, 3, H, W]) in processing order, kept where they are (CPU is fine) and moved one frame
    at a time. num_objects: K. req_frames: processing indices that must be segmented (others
    may be skipped when not needed for memory); None = all. Probabilities are kept per frame
    at the padded resolution ([K+1, 1, Hp, Wp], fp16 on CUDA, fp32 on CPU).

    The readout gathers the top-k memory values per query position (model.memory.topk_readout);
    it equals the original dense readout up to float rounding (~1e-7), which can flip a
    pixel whose two best classes are that close. config.exact_readout uses the dense form: in
    fp32 on CPU the probabilities are then bitwise those of the original per-object loop
    (tests/commands/test_bench_equivalence.py), at the cost of the readout speed-up.

    config: the InferenceConfig (default: STCN's DAVIS settings).
    """

    def __init__(self, net, images, num_objects, config=None, req_frames=None, device=None,
                 prob_dtype=None):
        config = config or InferenceConfig()
        if images.dim() == 5:
            images = images[0]
        self.net = net
        self.device = torch.device(device) if device is not None else \
            next(net.parameters()).device
        self.images = images                                   # [T, 3, H, W], padded per frame
        self.t = images.shape[0]
        probe, self.pad = pad_divide_by(images[:1, :1], 16)
        self.padded_size = tuple(probe.shape[-2:])              # (Hp, Wp)
        self.k = int(num_objects)
        self.config = config
        self.labeled = set()                 # processing indices of the labeled frames
        self.req_frames = None if req_frames is None else set(int(i) for i in req_frames)
        amp = config.amp
        self.amp = amp if amp and amp_dtype(self.device, amp) is not None else False
        if not self.amp and next(net.parameters()).dtype != torch.float32:
            raise ValueError('the network was prepared for --amp (prepare_for_amp): run it '
                             'with amp=True, or load it without --amp')
        if prob_dtype is None:
            prob_dtype = torch.float16 if self.device.type == 'cuda' else torch.float32
        self.prob_dtype = prob_dtype
        self.mem_dtype = memory_dtype(self.device, self.amp)
        self.layout = amp_memory_format(self.device, self.amp)
        self.prob = [None] * self.t          # per frame [K+1, 1, Hp, Wp] or None
        self.enabled = set()                 # objects (1..K) labeled so far
        self.processed = 0                   # frames segmented (labeled ones included)
        self.mem = None

    # ------------------------------------------------------------------ pieces
    def _frame(self, ti):
        """Frame ti on the device, padded: [1, 3, Hp, Wp] (in the AMP layout)."""
        frame = pad_divide_by(self.images[ti:ti + 1].to(self.device, non_blocking=True), 16)[0]
        return frame.contiguous(memory_format=self.layout)

    def _encode_key(self, ti):
        """-> (frame [1, 3, Hp, Wp], k16 [1, 64, h, w], v16 [1, 512, h, w], f16, f8, f4)."""
        frame = self._frame(ti)
        return (frame,) + tuple(self.net.encode_key(frame))

    def _memory(self, hw):
        if self.mem is None:
            expected = self.t // self.config.mem_every + 2     # grows if more are needed
            if self.config.max_mem_frames is not None:
                expected = min(expected, self.config.max_mem_frames + 2)
            self.mem = MemoryBank(self.k, KEY_DIM, VALUE_DIM, hw, min(self.t, expected),
                                  self.device, self.mem_dtype)
        return self.mem

    def _add_memory(self, ti, feats, prob, temp=False):
        """Encode frame ti's values from prob [K+1, 1, Hp, Wp] and store key + value."""
        frame, k16, _, f16, _, _ = feats
        value = self.net.encode_value(frame, f16, prob[1:].to(frame.dtype))   # [K, 512, 1, h, w]
        mem = self._memory(k16.shape[-2] * k16.shape[-1])
        if not temp and self.config.max_mem_frames is not None and ti not in self.labeled:
            free = [i for i, f in enumerate(mem.frames) if f not in self.labeled]
            if len(free) >= self.config.max_mem_frames:
                mem.remove(free[0])                        # first in, first out
        mem.add(k16.flatten(2), value.flatten(2), ti, temp=temp)

    def _mask_disabled(self, prob):
        """Zero the rows of objects not labeled yet. prob [K+1, ...] (in place)."""
        for obj in range(1, self.k + 1):
            if obj not in self.enabled:
                prob[obj] = 0
        return prob

    def _read_memory(self, k16):
        """Top-k readout for query key k16 [1, 64, h, w] -> [h*w, K*512] (rows per position)."""
        mk, rows = self.mem.used()
        with torch.autocast(device_type=self.device.type, enabled=False):
            # affinity and top-k in fp32 (bf16 would blur close affinities)
            if self.config.exact_readout:
                return dense_topk_readout(mk.float(), k16.flatten(2).float(), rows,
                                          self.config.top_k, self.k)
            return topk_readout(mk.float(), k16.flatten(2).float(), rows, self.config.top_k)

    def _decode(self, mem, feats, objs):
        """mem [h*w, K*512] -> probabilities [K, 1, Hp, Wp] (zero for objects not in objs)."""
        _, k16, v16, _, f8, f4 = feats
        h, w = k16.shape[-2:]
        idx = torch.tensor([o - 1 for o in objs], device=self.device)
        mem = mem.view(h * w, self.k, -1).index_select(1, idx)               # [hw, Ke, 512]
        mem = mem.permute(1, 2, 0).reshape(len(objs), -1, h, w)              # [Ke, 512, h, w]
        p = self.net.decode(mem, v16, f8, f4).float()                        # [Ke, 1, Hp, Wp]
        if len(objs) == self.k:
            return p
        full = p.new_zeros((self.k,) + p.shape[1:])
        full[idx] = p
        return full

    def _segment(self, feats):
        """Predict one frame from the memory -> aggregated probabilities [K+1, 1, Hp, Wp]."""
        objs = sorted(self.enabled)
        if not objs:                                                       # nothing labeled
            prob = torch.zeros((self.k + 1, 1) + self.padded_size, device=self.device)
            prob[0] = 1
            return prob
        p = self._decode(self._read_memory(feats[1]), feats, objs)
        prob = aggregate(p, dim=0, return_logits=False)                     # [K+1, 1, Hp, Wp]
        return self._mask_disabled(prob)

    def _is_mem_frame(self, ti, last_mem):
        if self.config.mem_style == 'davis':
            return ti % self.config.mem_every == 0
        return ti - last_mem >= self.config.mem_every

    # ------------------------------------------------------------------ public
    @torch.inference_mode()
    def interact(self, mask, frame_idx, end_idx, objects=None):
        """Label frame `frame_idx` and propagate to `end_idx` (exclusive).

        mask: probabilities [K+1, 1, H, W] (background first) or [K, 1, H, W] at the
        un-padded input size. objects: the object indices (1..K) this label defines; they take
        the label, every other object keeps its predicted probability outside the labeled
        regions. Default: the objects with a pixel above 0.5 in `mask`.
        """
        if not 0 <= frame_idx < self.t or end_idx > self.t:
            raise ValueError(f'frame {frame_idx} / end {end_idx} outside 0..{self.t}')
        mask = mask.to(self.device, torch.float32)
        if mask.shape[0] == self.k + 1:
            mask = mask[1:]
        if mask.shape[0] != self.k:
            raise ValueError(f'mask has {mask.shape[0]} rows for {self.k} objects')
        mask, _ = pad_divide_by(mask, 16)                                  # [K, 1, Hp, Wp]
        if objects is None:
            objects = [k + 1 for k in range(self.k) if mask[k].max() > 0.5]
        objects = sorted(set(int(o) for o in objects))
        with amp_context(self.device, self.amp):
            if self.prob[frame_idx] is None:       # not reached by a propagation
                self.processed += 1
            feats = self._encode_key(frame_idx)
            others = self.enabled - set(objects)
            if self.prob[frame_idx] is None and others and self.mem is not None:
                self.prob[frame_idx] = self._segment(feats).to(self.prob_dtype)
            cur = (self.prob[frame_idx][1:].float().clone() if self.prob[frame_idx] is not None
                   else mask.new_zeros(mask.shape))
            if objects:
                sel = [o - 1 for o in objects]
                region = mask[sel].sum(0) > 0.5                            # [1, Hp, Wp]
                cur[:, region] = 0
                cur[sel] = mask[sel]
            self.enabled |= set(objects)
            prob = self._mask_disabled(aggregate(cur, dim=0, return_logits=False))
            self.prob[frame_idx] = prob.to(self.prob_dtype)
            self.labeled.add(frame_idx)
            self._add_memory(frame_idx, feats, prob)
            self._propagate(frame_idx, end_idx)

    def _propagate(self, frame_idx, end_idx):
        last_mem, end = frame_idx, end_idx - 1
        for ti in range(frame_idx + 1, end_idx):
            is_mem = self._is_mem_frame(ti, last_mem)
            to_memory = (is_mem or self.config.include_last) and ti != end
            if not to_memory and self.req_frames is not None and ti not in self.req_frames:
                continue                                    # not needed: skip entirely
            feats = self._encode_key(ti)
            prob = self._segment(feats)
            self.prob[ti] = prob.to(self.prob_dtype)
            self.processed += 1
            if to_memory:
                self._add_memory(ti, feats, prob, temp=not is_mem)
                if is_mem:
                    last_mem = ti

    @property
    def mem_frames(self):
        """Processing indices of the permanent memory frames (in insertion order)."""
        return [] if self.mem is None else list(self.mem.frames)

    @torch.inference_mode()
    def get_prob(self, ti, size=None):
        """Probabilities [K+1, H, W] (float32) of frame ti at `size` (default: input size)."""
        p = self.prob[ti]
        if p is None:
            return None
        p = unpad(p.float(), self.pad)[:, 0]                               # [K+1, H, W]
        if size is not None and tuple(size) != tuple(p.shape[-2:]):
            p = F.interpolate(p[None], size=tuple(size), mode='bilinear',
                              align_corners=False)[0]
        return p

    @torch.inference_mode()
    def get_mask(self, ti, size=None):
        """Index mask uint8 numpy [H, W] (0 = background, 1..K) of frame ti, or None when the
        frame was not segmented. Un-pad, bilinear resize of the probabilities, argmax."""
        p = self.get_prob(ti, size)
        if p is None:
            return None
        return argmax_classes(p).cpu().numpy()
