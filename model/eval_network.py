"""STCN inference network (multi-object). Same parameter names as the training network.

One frame at a time: B = 1 for keys. Values and decoding run over the K objects either in
one batch (CUDA default) or one object at a time (CPU default: on a CPU a batch brings no
speed, its K-times larger activations cost page faults, and per-object results are bitwise
those of a per-object loop). Either way the decoder's skip convolutions of the query
features f8 / f4 run once per frame and are shared by all objects, and the decoder works
in place (Decoder's `skips` option: the same arithmetic, the same results). The memory
readout is inference_core's (model.memory.topk_readout).
"""
import torch
import torch.nn as nn

from model.modules import Decoder, KeyEncoder, KeyProjection, ValueEncoder
from model.network import KEY_DIM, VALUE_DIM


def _per_object(device, per_object):
    return torch.device(device).type == 'cpu' if per_object is None else bool(per_object)


def others_sum(masks):
    """masks [K, 1, H, W] -> for each object the sum of the other objects' masks [K, 1, H, W]
    (zeros when K = 1), summed in object order."""
    k = masks.shape[0]
    if k == 1:
        return torch.zeros_like(masks)
    out = []
    for i in range(k):
        rest = [masks[j:j + 1] for j in range(k) if j != i]
        acc = rest[0]
        for m in rest[1:]:
            acc = acc + m
        out.append(acc)
    return torch.cat(out, 0)


class STCN(nn.Module):
    def __init__(self):
        super().__init__()
        self.key_encoder = KeyEncoder()
        self.value_encoder = ValueEncoder(single_object=False)
        self.key_proj = KeyProjection(1024, keydim=KEY_DIM)
        self.key_comp = nn.Conv2d(1024, VALUE_DIM, 3, padding=1)
        self.decoder = Decoder()

    def encode_key(self, frame):
        """frame [B, 3, H, W] -> k16 [B, 64, h, w], f16_thin [B, 512, h, w], f16 [B, 1024, h, w],
        f8 [B, 512, H/8, W/8], f4 [B, 256, H/4, W/4]."""
        f16, f8, f4 = self.key_encoder(frame)
        return self.key_proj(f16), self.key_comp(f16), f16, f8, f4

    def encode_value(self, frame, kf16, masks, per_object=None):
        """frame [1, 3, H, W], kf16 [1, 1024, h, w], masks [K, 1, H, W] -> [K, 512, 1, h, w].

        Each object is encoded with its own mask and the sum of the other objects' masks.
        per_object: one object at a time (default on CPU) or all in one batch.
        """
        k = masks.shape[0]
        others = others_sum(masks)
        if _per_object(masks.device, per_object):
            f16 = torch.cat([self.value_encoder(frame, kf16, masks[i:i + 1], others[i:i + 1])
                             for i in range(k)], 0)
        else:
            f16 = self.value_encoder(frame.expand(k, -1, -1, -1), kf16.expand(k, -1, -1, -1),
                                     masks, others)
        return f16.unsqueeze(2)

    def decode(self, mem, qv16, qf8, qf4, per_object=None):
        """mem [K, 512, h, w] + query features of one frame -> object probabilities [K, 1, H, W].

        sigmoid(decoder(cat(mem, qv16), qf8, qf4)) for each object; the skip convolutions of
        qf8 / qf4 run once for all objects. Under CPU autocast (bf16) the decoder's last
        convolution, the upsampling and the sigmoid run in fp32 (probabilities float32); CUDA
        autocast runs them in fp16, as the original.
        """
        skips = self.decoder.skips(qf8[:1], qf4[:1])
        groups = mem.split(1) if _per_object(mem.device, per_object) else [mem]
        out = []
        head_fp32 = mem.device.type == 'cpu'
        for m in groups:
            x = torch.cat([m, qv16.expand(m.shape[0], -1, -1, -1)], 1)
            out.append(torch.sigmoid_(self.decoder(x, None, None, skips=skips,
                                                   head_fp32=head_fp32)))
        return torch.cat(out, 0) if len(out) > 1 else out[0]
