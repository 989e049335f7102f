"""What DDP wraps in training: the triplet forward of the training STCN (docs/method.md,
"Training"), one forward per iteration so that gradients are synchronised once.

Shapes: B batch, 3 frames per sample, H = W = crop size, K objects (2, or 1 in stage 0).
"""
import torch
import torch.nn as nn


def triplet_forward(net, rgb, first_gt, first_sec_gt=None, selector=None):
    """Triplet forward of the training STCN (docs/method.md, "Training").

    rgb [B, 3, 3, H, W]; first_gt / first_sec_gt [B, 1, H, W] (frame 0 masks); selector [B, 2].
    Keys of all 3 frames; values of frame 0 (each object with its mask and the other's);
    segment frame 1 from frame 0; values of frame 1 from its predicted masks; segment frame 2
    from frames 0 and 1. Returns {'logits_1', 'logits_2': [B, K+1, H, W],
    'prob_1', 'prob_2': [B, K, H, W] object probabilities}.
    """
    k16, f16_thin, f16, f8, f4 = net.encode_key(rgb)

    def seg(t, mk, mv):
        return net.segment(k16[:, :, t], f16_thin[:, t], f8[:, t], f4[:, t], mk, mv, selector)

    if net.single_object:
        ref_v = net.encode_value(rgb[:, 0], f16[:, 0], first_gt)                 # [B, 512, 1, h, w]
        logits1, prob1 = seg(1, k16[:, :, 0:1], ref_v)
        prev_v = net.encode_value(rgb[:, 1], f16[:, 1], prob1[:, 0:1])
        logits2, prob2 = seg(2, k16[:, :, 0:2], torch.cat([ref_v, prev_v], 2))
    else:
        if first_sec_gt is None:
            first_sec_gt = torch.zeros_like(first_gt)
        ref_v = torch.stack([net.encode_value(rgb[:, 0], f16[:, 0], first_gt, first_sec_gt),
                             net.encode_value(rgb[:, 0], f16[:, 0], first_sec_gt, first_gt)],
                            1)                                   # [B, 2, 512, 1, h, w]
        logits1, prob1 = seg(1, k16[:, :, 0:1], ref_v)
        p_t, p_s = prob1[:, 0:1], prob1[:, 1:2]
        prev_v = torch.stack([net.encode_value(rgb[:, 1], f16[:, 1], p_t, p_s),
                              net.encode_value(rgb[:, 1], f16[:, 1], p_s, p_t)], 1)
        logits2, prob2 = seg(2, k16[:, :, 0:2], torch.cat([ref_v, prev_v], 3))
    return {'logits_1': logits1, 'logits_2': logits2, 'prob_1': prob1, 'prob_2': prob2}


class TripletModule(nn.Module):
    """What DDP wraps: one forward = one triplet (so gradient sync happens once)."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, rgb, first_gt, first_sec_gt, selector):
        return triplet_forward(self.net, rgb, first_gt, first_sec_gt, selector)
