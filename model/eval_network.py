"""STCN inference network (multi-object). Same parameter names as the training network.

One frame at a time: B = 1 for keys; values and decoding are batched over the K objects.
"""
import torch
import torch.nn as nn

from model.memory import get_affinity, readout, softmax_topk
from model.modules import Decoder, KeyEncoder, KeyProjection, ValueEncoder
from model.network import KEY_DIM, VALUE_DIM


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

    def encode_value(self, frame, kf16, masks):
        """frame [1, 3, H, W], kf16 [1, 1024, h, w], masks [K, 1, H, W] -> [K, 512, 1, h, w].

        Each object is encoded with its own mask and the sum of the other objects' masks.
        """
        k = masks.shape[0]
        if k > 1:
            keep = ~torch.eye(k, dtype=torch.bool, device=masks.device)
            others = torch.stack([masks[keep[i]].sum(0) for i in range(k)])
        else:
            others = torch.zeros_like(masks)
        f16 = self.value_encoder(frame.expand(k, -1, -1, -1), kf16.expand(k, -1, -1, -1),
                                 masks, others)
        return f16.unsqueeze(2)

    @staticmethod
    def read_memory(mem_keys, mem_values, qk16, top_k=20):
        """mem_keys [1, 64, N], mem_values [K, 512, N], qk16 [1, 64, h, w] -> [K, 512, h, w].

        One top-k affinity shared by all objects.
        """
        _, _, h, w = qk16.shape
        weights = softmax_topk(get_affinity(mem_keys, qk16.flatten(2)), top_k)  # [1, N, hw]
        k = mem_values.shape[0]
        mem = readout(weights, mem_values.reshape(1, k * VALUE_DIM, -1))       # [1, K*512, hw]
        return mem.view(k, VALUE_DIM, h, w)

    def decode(self, mem, qv16, qf8, qf4):
        """mem [K, 512, h, w] + query features of one frame -> object probabilities [K, 1, H, W]."""
        k = mem.shape[0]
        x = torch.cat([mem, qv16.expand(k, -1, -1, -1)], 1)
        logits = self.decoder(x, qf8.expand(k, -1, -1, -1), qf4.expand(k, -1, -1, -1))
        return torch.sigmoid(logits)

    def segment_with_query(self, mem_keys, mem_values, qk16, qv16, qf8, qf4, top_k=20):
        return self.decode(self.read_memory(mem_keys, mem_values, qk16, top_k), qv16, qf8, qf4)
