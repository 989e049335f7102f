"""Affinity between memory keys and query keys, full-softmax and top-k readout.

mk: memory keys  [B, C_k, N]  (N = T*h*w memory positions)
qk: query keys   [B, C_k, M]  (M = h*w query positions)
mv: memory values [B, C_v, N]
"""
import math

import torch


def get_affinity(mk, qk):
    """(2 mk^T qk - |mk|^2) / sqrt(C_k): the negative squared L2 distance without |qk|^2.

    Returns [B, N, M] (unnormalised; softmax over N gives the attention).
    """
    ck = mk.shape[1]
    a_sq = mk.pow(2).sum(1).unsqueeze(2)          # [B, N, 1]
    ab = torch.bmm(mk.transpose(1, 2), qk)        # [B, N, M]
    return (2 * ab - a_sq) / math.sqrt(ck)


def softmax_full(affinity):
    """Softmax over the memory dimension (training)."""
    return torch.softmax(affinity, dim=1)


def softmax_topk(affinity, top_k):
    """Keep the top_k memory entries per query position, softmax over them, zero elsewhere."""
    top_k = min(top_k, affinity.shape[1])
    values, indices = torch.topk(affinity, k=top_k, dim=1)       # [B, k, M]
    weights = torch.softmax(values, dim=1)
    return torch.zeros_like(affinity).scatter_(1, indices, weights)


def readout(weights, mv):
    """weights [B, N, M], mv [B, C_v, N] -> [B, C_v, M]."""
    return torch.bmm(mv, weights)
