"""Straightforward reference implementations that the benchmarks compare against.

Inference (`BaselineCore`): the propagation loop the way the original STCN code computes it,
written from its description (docs/method.md, "Network" and "Inference"), using only the
network's sub-modules (never the optimised `encode_value` / `decode` / memory code of this
project):
  - full precision, `torch.no_grad` (not inference mode), NCHW tensors;
  - memory grows by `torch.cat` at every memory frame (the temporary entry is concatenated
    anew at every readout);
  - affinity [N, M] made dense, top-k with `torch.topk` along the memory dimension, the
    softmaxed top-k weights scattered into a zeroed dense [N, M] matrix, readout as one dense
    matmul per object;
  - value encoding and decoding in a Python loop, one object at a time.
It supports what the equivalence tests need: one label (all objects on one frame), both
memory styles ('davis', 'youtube') and include_last. Masks come out of the same aggregation
and argmax as `InferenceCore`.

Training (`BaselineSTCNModel`): the trainer with the original behaviour around pseudo labels:
  - with --semi --use_teacher the teacher forward runs at every iteration once the teacher
    exists, also before --end_warm when its output is unused;
  - where pseudo labels come from the student itself (no teacher), a separate no-grad student
    forward makes them instead of reusing the training forward's detached output.
Everything else is `model.trainer.STCNModel.do_pass`.
"""
import torch
import torch.nn.functional as F

from dataset.data_mode import BASE
from model.aggregate import aggregate
from model.memory import get_affinity
from model.trainer import STCNModel
from model.triplet import triplet_forward
from scripts.bench.common import NoTimer
from util.tensor_util import pad_divide_by, unpad


class BaselineCore:
    """Reference propagation of one video (see the module docstring).

    net: model.eval_network.STCN (eval mode); images [1, T, 3, H, W] or [T, 3, H, W]
    normalised, in processing order; num_objects: K. Probabilities [K+1, T, 1, Hp, Wp] fp32.
    """

    def __init__(self, net, images, num_objects, top_k=20, mem_every=5, include_last=False,
                 mem_style='davis', device=None, timer=None):
        if images.dim() == 5:
            images = images[0]
        self.net = net
        self.device = torch.device(device) if device is not None else \
            next(net.parameters()).device
        self.images = images
        self.t = images.shape[0]
        self.k = int(num_objects)
        self.top_k, self.mem_every = top_k, mem_every
        self.include_last, self.mem_style = include_last, mem_style
        _, self.pad = pad_divide_by(images[:1, :1], 16)
        hp, wp = pad_divide_by(images[:1, :1], 16)[0].shape[-2:]
        self.prob = torch.zeros(self.k + 1, self.t, 1, hp, wp)
        self.done = [False] * self.t
        self.mem_k = self.mem_v = self.temp_k = self.temp_v = None
        self.mem_frames, self.temp_frame = [], None
        self.processed = 0
        self.timer = timer if timer is not None else NoTimer()

    # -- network pieces, one object at a time
    def encode_key(self, ti):
        frame = pad_divide_by(self.images[ti:ti + 1].to(self.device), 16)[0]
        with self.timer('key'):
            f16, f8, f4 = self.net.key_encoder(frame)
            k16 = self.net.key_proj(f16)
            v16 = self.net.key_comp(f16)
        return frame, k16, v16, f16, f8, f4

    def encode_value(self, frame, f16, masks):
        """masks [K, 1, Hp, Wp] -> values [K, 512, 1, h, w], one object per call."""
        out = []
        with self.timer('value'):
            for i in range(self.k):
                if self.k > 1:
                    others = sum(masks[j:j + 1] for j in range(self.k) if j != i)
                else:
                    others = torch.zeros_like(masks[i:i + 1])
                out.append(self.net.value_encoder(frame, f16, masks[i:i + 1], others))
        return torch.cat(out, 0).unsqueeze(2)

    def add_memory(self, key, value, ti, temp=False):
        """key [1, 64, 1, h, w], value [K, 512, 1, h, w]; memory grows by concatenation."""
        with self.timer('value'):
            self._add_memory(key.flatten(2), value.flatten(2), ti, temp)

    def _add_memory(self, key, value, ti, temp):
        self.temp_k = self.temp_v = None
        self.temp_frame = None
        if self.mem_k is None:
            self.mem_k, self.mem_v = key, value
            self.mem_frames.append(ti)
        elif temp:
            self.temp_k, self.temp_v = key, value
            self.temp_frame = ti
        else:
            self.mem_k = torch.cat([self.mem_k, key], 2)
            self.mem_v = torch.cat([self.mem_v, value], 2)
            self.mem_frames.append(ti)

    def read_memory(self, qk16):
        """qk16 [1, 64, h, w] -> readout [K, 512, h, w]: dense top-k weights, one matmul per
        object."""
        with self.timer('readout'):
            _, _, h, w = qk16.shape
            mk, mv = self.mem_k, self.mem_v
            if self.temp_k is not None:
                mk = torch.cat([mk, self.temp_k], 2)
                mv = torch.cat([mv, self.temp_v], 2)
            affinity = get_affinity(mk, qk16.flatten(2))                    # [1, N, M]
            k = min(self.top_k, affinity.shape[1])
            values, indices = torch.topk(affinity, k=k, dim=1)
            weights = torch.softmax(values, dim=1)
            dense = affinity.zero_().scatter_(1, indices, weights)           # [1, N, M]
            out = [torch.bmm(mv[i:i + 1], dense) for i in range(self.k)]    # K x [1, 512, M]
            return torch.cat(out, 0).view(self.k, -1, h, w)

    def segment(self, feats):
        _, k16, v16, _, f8, f4 = feats
        mem = self.read_memory(k16)
        with self.timer('decode'):
            probs = []
            for i in range(self.k):
                x = torch.cat([mem[i:i + 1], v16], 1)
                probs.append(torch.sigmoid(self.net.decoder(x, f8, f4)))
            prob = torch.cat(probs, 0)                                       # [K, 1, Hp, Wp]
        return aggregate(prob, dim=0, return_logits=False)                  # [K+1, 1, Hp, Wp]

    def memory_entries(self):
        """Frames in memory (the temporary entry included)."""
        return len(self.mem_frames) + (self.temp_k is not None)

    def _is_mem_frame(self, ti, last_mem):
        if self.mem_style == 'davis':
            return ti % self.mem_every == 0
        return ti - last_mem >= self.mem_every

    # -- the loop
    @torch.no_grad()
    def interact(self, mask, frame_idx, end_idx):
        """mask [K, 1, H, W] (one-hot probabilities of all objects) on frame `frame_idx`;
        propagate up to `end_idx` (exclusive)."""
        mask, _ = pad_divide_by(mask.to(self.device, torch.float32), 16)
        prob = aggregate(mask, dim=0, return_logits=False)
        self.prob[:, frame_idx] = prob.cpu()
        self.done[frame_idx] = True
        self.processed += 1
        feats = self.encode_key(frame_idx)
        frame, k16, _, f16, _, _ = feats
        self.add_memory(k16.unsqueeze(2), self.encode_value(frame, f16, prob[1:]), frame_idx)
        last_mem, end = frame_idx, end_idx - 1
        for ti in range(frame_idx + 1, end_idx):
            feats = self.encode_key(ti)
            prob = self.segment(feats)
            self.prob[:, ti] = prob.cpu()
            self.done[ti] = True
            self.processed += 1
            if ti == end:
                continue
            is_mem = self._is_mem_frame(ti, last_mem)
            if is_mem or self.include_last:
                frame, k16, _, f16, _, _ = feats
                self.add_memory(k16.unsqueeze(2), self.encode_value(frame, f16, prob[1:]), ti,
                                temp=not is_mem)
                if is_mem:
                    last_mem = ti

    def get_prob(self, ti, size=None):
        """[K+1, H, W] float32 probabilities of frame ti (un-padded, optionally resized)."""
        if not self.done[ti]:
            return None
        p = unpad(self.prob[:, ti], self.pad)[:, 0]
        if size is not None and tuple(size) != tuple(p.shape[-2:]):
            p = F.interpolate(p[None], size=tuple(size), mode='bilinear', align_corners=False)[0]
        return p

    def get_mask(self, ti, size=None):
        p = self.get_prob(ti, size)
        return None if p is None else p.argmax(0).to(torch.uint8).cpu().numpy()


# ----------------------------------------------------------------------------- training

class BaselineSTCNModel(STCNModel):
    """The trainer with the original pseudo-label forwards (see the module docstring)."""

    baseline_extra_forwards = 0

    def _wasted_teacher_forward(self, mode):
        """True where the original ran a teacher forward whose output is unused: --semi runs
        in their warm-up."""
        return (bool(self.para['semi']) and self.use_teacher and self.teacher is not None
                and mode == BASE)

    def do_pass(self, data, it, mode, timing=None):
        if self._wasted_teacher_forward(mode):
            dev = self.device
            rgb = data['rgb'].to(dev)
            gt = data['gt'].to(dev)
            sec = data['sec_gt'].to(dev) if 'sec_gt' in data else torch.zeros_like(gt)
            sel = (data['selector'].to(dev).float() if 'selector' in data
                   else torch.ones(rgb.shape[0], 2, device=dev))
            with torch.no_grad(), self.autocast():
                triplet_forward(self.teacher, rgb, gt[:, 0], sec[:, 0], sel)
            self.baseline_extra_forwards += 1
        return super().do_pass(data, it, mode, timing)

    @torch.no_grad()
    def _reference_logits(self, out, rgb, gt0, sec0, selector):
        if self._predictor() is not None:
            return super()._reference_logits(out, rgb, gt0, sec0, selector)
        self.baseline_extra_forwards += 1              # a separate no-grad student forward
        with self.autocast():
            s_out = triplet_forward(self.net, rgb, gt0, sec0, selector)
        return s_out['logits_1'], s_out['logits_2']
