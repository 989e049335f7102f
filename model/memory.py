"""Affinity between memory keys and query keys, full-softmax and top-k readout.

mk: memory keys  [B, C_k, N]  (N = T*h*w memory positions)
qk: query keys   [B, C_k, M]  (M = h*w query positions)
mv: memory values [B, C_v, N]
"""
import math

import torch
import torch.nn.functional as F


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


def topk_readout(mk, qk, mv_rows, top_k, mk_sq=None):
    """Top-k readout without a dense [N, M] weight matrix (inference).

    mk [1, C_k, N], qk [1, C_k, M], mv_rows [N, C_v] (one row per memory position; all objects'
    values side by side) -> [M, C_v]. The same numbers as
    readout(softmax_topk(get_affinity(mk, qk), top_k), mv) up to float rounding: the affinity is
    made query-major ([M, N], so top-k runs along contiguous rows), the scale 1/sqrt(C_k) is
    applied to the k kept values only (it does not change their order), and the readout is a
    weighted sum of k gathered memory rows per query (embedding_bag) instead of a matmul over
    all N. mk_sq: |mk|^2 [1, N] if already known.
    """
    n = mk.shape[2]
    if mk_sq is None:
        mk_sq = mk.pow(2).sum(1)                                     # [1, N]
    # 2 qk^T mk - |mk|^2: [1, M, N]
    aff = torch.baddbmm(mk_sq.unsqueeze(1), qk.transpose(1, 2), mk, beta=-1, alpha=2)
    values, indices = torch.topk(aff[0], k=min(top_k, n), dim=1)    # [M, k]
    weights = torch.softmax(values / math.sqrt(mk.shape[1]), dim=1)
    return F.embedding_bag(indices, mv_rows, mode='sum',
                                             per_sample_weights=weights.to(mv_rows.dtype))


def dense_topk_readout(mk, qk, mv_rows, top_k, num_objects):
    """topk_readout computed the reference way, for bitwise reproducibility.

    Dense top-k weights [1, N, M] (softmax_topk of get_affinity) and one matmul per object
    over its contiguous values [1, C_v / K, N]: the arithmetic of the original STCN readout.
    Returns [M, C_v] like topk_readout. Slower (it multiplies all N memory positions).
    """
    weights = softmax_topk(get_affinity(mk.contiguous(), qk), top_k)          # [1, N, M]
    n = mv_rows.shape[0]
    mv = mv_rows.t().reshape(num_objects, -1, n)                              # [K, C, N]
    out = [torch.bmm(mv[i:i + 1].contiguous(), weights.to(mv.dtype)) for i in range(num_objects)]
    return torch.cat(out, 0).permute(2, 0, 1).reshape(qk.shape[2], -1)       # [M, K*C]
