"""CBAM attention (channel gate then spatial gate), as used by the value-encoder fuser.

Parameter names follow the STCN checkpoints: ChannelGate.mlp.{1,3}, SpatialGate.spatial.conv.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


class BasicConv(nn.Module):
    """A conv with bias; no norm / activation (the only use here is the spatial gate)."""

    def __init__(self, in_planes, out_planes, kernel_size, padding):
        super().__init__()
        self.conv = nn.Conv2d(in_planes, out_planes, kernel_size, padding=padding, bias=True)

    def forward(self, x):
        return self.conv(x)


class ChannelGate(nn.Module):
    """Per-channel weights from an MLP over avg- and max-pooled features (reduction 16)."""

    def __init__(self, channels, reduction_ratio=16):
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Flatten(),
            nn.Linear(channels, channels // reduction_ratio),
            nn.ReLU(),
            nn.Linear(channels // reduction_ratio, channels),
        )

    def forward(self, x):                         # x: [B, C, H, W]
        avg = self.mlp(F.adaptive_avg_pool2d(x, 1))
        mx = self.mlp(F.adaptive_max_pool2d(x, 1))
        scale = torch.sigmoid(avg + mx)[:, :, None, None]
        return x * scale


class SpatialGate(nn.Module):
    """Per-pixel weight from a 7x7 conv over [channel max, channel mean]."""

    def __init__(self):
        super().__init__()
        self.spatial = BasicConv(2, 1, 7, padding=3)

    def forward(self, x):                         # x: [B, C, H, W]
        pooled = torch.cat([x.amax(dim=1, keepdim=True), x.mean(dim=1, keepdim=True)], 1)
        return x * torch.sigmoid(self.spatial(pooled))


class CBAM(nn.Module):
    def __init__(self, channels, reduction_ratio=16):
        super().__init__()
        self.ChannelGate = ChannelGate(channels, reduction_ratio)
        self.SpatialGate = SpatialGate()

    def forward(self, x):
        return self.SpatialGate(self.ChannelGate(x))
