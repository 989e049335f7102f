"""Soft aggregation of per-object probabilities into K+1 class logits."""
import torch


def aggregate(prob, dim=1, return_logits=True):
    """prob: [..., K, ...] object probabilities along `dim`.

    Background = prod(1 - p_k); all K+1 clamped to [1e-7, 1 - 1e-7]; logit = log(p / (1 - p)).
    Returns the K+1 logits (softmax over `dim` gives the aggregated probabilities), or those
    softmaxed probabilities when return_logits is False.
    """
    bg = torch.prod(1 - prob, dim=dim, keepdim=True)
    new_prob = torch.cat([bg, prob], dim).clamp(1e-7, 1 - 1e-7)
    logits = torch.log(new_prob / (1 - new_prob))
    return logits if return_logits else torch.softmax(logits, dim=dim)
