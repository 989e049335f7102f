"""STCN training network (single- or two-object), as in docs/method.md, "Network".

Shapes: B batch, T frames, K objects (2 in multi-object training), h, w = H/16, W/16.
Batch norm is frozen by the trainer (the network stays in eval() mode).
"""
import torch
import torch.nn as nn

from model.aggregate import aggregate
from model.memory import get_affinity, readout, softmax_full
from model.modules import Decoder, KeyEncoder, KeyProjection, ValueEncoder

KEY_DIM = 64
VALUE_DIM = 512


class STCN(nn.Module):
    def __init__(self, single_object=False):
        super().__init__()
        self.single_object = single_object
        self.key_encoder = KeyEncoder()
        self.value_encoder = ValueEncoder(single_object)
        self.key_proj = KeyProjection(1024, keydim=KEY_DIM)   # key: f16 -> 64 channels
        self.key_comp = nn.Conv2d(1024, VALUE_DIM, 3, padding=1)  # query value "f16_thin"
        self.decoder = Decoder()

    def encode_key(self, frame):
        """frame [B, T, 3, H, W] -> k16 [B, 64, T, h, w], f16_thin [B, T, 512, h, w],
        f16 [B, T, 1024, h, w], f8 [B, T, 512, H/8, W/8], f4 [B, T, 256, H/4, W/4]."""
        b, t = frame.shape[:2]
        f16, f8, f4 = self.key_encoder(frame.flatten(0, 1))
        k16 = self.key_proj(f16)
        f16_thin = self.key_comp(f16)

        def unflatten(x):
            return x.view(b, t, *x.shape[1:])
        k16 = unflatten(k16).transpose(1, 2).contiguous()
        return k16, unflatten(f16_thin), unflatten(f16), unflatten(f8), unflatten(f4)

    def encode_value(self, frame, kf16, mask, other_mask=None):
        """frame [B, 3, H, W], kf16 [B, 1024, h, w], masks [B, 1, H, W] -> [B, 512, 1, h, w]."""
        return self.value_encoder(frame, kf16, mask, other_mask).unsqueeze(2)

    def segment(self, qk16, qv16, qf8, qf4, mk16, mv16, selector=None):
        """Segment a query frame from memory.

        qk16 [B, 64, h, w], qv16 [B, 512, h, w], qf8 [B, 512, H/8, W/8], qf4 [B, 256, H/4, W/4];
        mk16 [B, 64, T, h, w]; mv16 [B, 512, T, h, w] (single object) or [B, K, 512, T, h, w];
        selector [B, K] (1 where object k exists).
        Returns logits [B, K+1, H, W] (aggregated) and object probabilities [B, K, H, W].
        """
        b, _, h, w = qk16.shape
        weights = softmax_full(get_affinity(mk16.flatten(2), qk16.flatten(2)))   # [B, N, hw]
        if self.single_object:
            mv16 = mv16.unsqueeze(1)
        k = mv16.shape[1]
        mem = readout(weights, mv16.flatten(3).flatten(1, 2))                   # [B, K*512, hw]
        mem = mem.view(b * k, VALUE_DIM, h, w)
        # decode all objects in one batch: query features repeated per object
        x = torch.cat([mem, qv16.repeat_interleave(k, 0)], 1)
        obj_logits = self.decoder(x, qf8.repeat_interleave(k, 0), qf4.repeat_interleave(k, 0))
        prob = torch.sigmoid(obj_logits.view(b, k, *obj_logits.shape[-2:]))   # [B, K, H, W]
        if selector is not None and not self.single_object:
            prob = prob * selector[:, :, None, None]
        logits = aggregate(prob, dim=1)
        return logits, torch.softmax(logits, dim=1)[:, 1:]
