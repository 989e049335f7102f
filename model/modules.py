"""STCN building blocks. Strides: f4 = 1/4, f8 = 1/8, f16 = 1/16 of the (padded) input.

Parameter names match the published checkpoints (tests/data/stcn_checkpoint_keys.tsv).
"""
import contextlib

import torch
import torch.nn as nn
import torch.nn.functional as F

from model.cbam import CBAM
from model.mod_resnet import ResNet18Trunk, ResNet50


def up2(x):
    """x2 bilinear upsampling."""
    return F.interpolate(x, scale_factor=2, mode='bilinear', align_corners=False)


def add_into(a, b):
    """a + b (b may have a larger batch), in place into b where that gives what a + b gives,
    layout included (a layout change would change the next convolution's kernel)."""
    if a.shape[1:] == b.shape[1:] and a.stride()[1:] == b.stride()[1:] \
            and a.shape[0] in (1, b.shape[0]) and a.dtype == b.dtype:
        return b.add_(a)
    return a + b


class ResBlock(nn.Module):
    """r = conv2(relu(conv1(relu(x)))); out = skip(x) + r, skip = 3x3 conv when in != out."""

    def __init__(self, indim, outdim=None):
        super().__init__()
        outdim = indim if outdim is None else outdim
        # defined first so the state_dict order matches the checkpoints
        self.downsample = None if indim == outdim else nn.Conv2d(indim, outdim, 3, padding=1)
        self.conv1 = nn.Conv2d(indim, outdim, 3, padding=1)
        self.conv2 = nn.Conv2d(outdim, outdim, 3, padding=1)

    def forward(self, x, in_place=False):
        if in_place:                              # no autograd: reuse the intermediates
            r = self.conv2(self.conv1(F.relu(x)).relu_())
            return add_into(x if self.downsample is None else self.downsample(x), r)
        r = self.conv2(F.relu(self.conv1(F.relu(x))))
        skip = x if self.downsample is None else self.downsample(x)
        return skip + r


class FeatureFusionBlock(nn.Module):
    """Fuse value features (256) with key features f16 (1024) -> 512 channels."""

    def __init__(self, indim, outdim):
        super().__init__()
        self.block1 = ResBlock(indim, outdim)
        self.attention = CBAM(outdim)
        self.block2 = ResBlock(outdim, outdim)

    def forward(self, x, f16):                    # x: [B, 256, h, w], f16: [B, 1024, h, w]
        x = self.block1(torch.cat([x, f16], 1))
        x = x + self.attention(x)
        return self.block2(x)                     # [B, 512, h, w]


class ValueEncoder(ResNet18Trunk):
    """Image + masks -> value [B, 512, h, w]. in_channels = 3 + 1 (single object) or 3 + 2."""

    def __init__(self, single_object=False):
        super().__init__(in_channels=4 if single_object else 5)
        self.single_object = single_object
        self.fuser = FeatureFusionBlock(1024 + 256, 512)

    def forward(self, image, key_f16, mask, other_masks=None):
        # image [B, 3, H, W], mask / other_masks [B, 1, H, W], key_f16 [B, 1024, h, w]
        parts = [image, mask] if self.single_object else [image, mask, other_masks]
        x = super().forward(torch.cat(parts, 1))  # [B, 256, h, w]
        return self.fuser(x, key_f16)


class KeyEncoder(nn.Module):
    """ResNet-50 stem + layer1 ('res2') .. layer3, torchvision layout."""

    def __init__(self):
        super().__init__()
        resnet = ResNet50()
        self.conv1 = resnet.conv1
        self.bn1 = resnet.bn1
        self.relu = resnet.relu
        self.maxpool = resnet.maxpool
        self.res2 = resnet.layer1
        self.layer2 = resnet.layer2
        self.layer3 = resnet.layer3

    def forward(self, x):                         # x: [B, 3, H, W]
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        f4 = self.res2(x)                         # [B, 256, H/4, W/4]
        f8 = self.layer2(f4)                      # [B, 512, H/8, W/8]
        f16 = self.layer3(f8)                     # [B, 1024, H/16, W/16]
        return f16, f8, f4


class UpsampleBlock(nn.Module):
    """skip_conv(skip) + x2 bilinear upsample(up), then a ResBlock (run by Decoder.forward)."""

    def __init__(self, skip_c, up_c, out_c):
        super().__init__()
        self.skip_conv = nn.Conv2d(skip_c, up_c, 3, padding=1)
        self.out_conv = ResBlock(up_c, out_c)


class KeyProjection(nn.Module):
    """f16 (1024) -> key (64); orthogonal weight, zero bias."""

    def __init__(self, indim, keydim):
        super().__init__()
        self.key_proj = nn.Conv2d(indim, keydim, 3, padding=1)
        nn.init.orthogonal_(self.key_proj.weight.data)
        nn.init.zeros_(self.key_proj.bias.data)

    def forward(self, x):
        return self.key_proj(x)


class Decoder(nn.Module):
    """concat(readout 512, f16_thin 512) + f8 + f4 -> one logit per pixel at full size."""

    def __init__(self):
        super().__init__()
        self.compress = ResBlock(1024, 512)
        self.up_16_8 = UpsampleBlock(512, 512, 256)   # f8 skip: 512 channels
        self.up_8_4 = UpsampleBlock(256, 256, 256)    # f4 skip: 256 channels
        self.pred = nn.Conv2d(256, 1, 3, padding=1)

    def skips(self, f8, f4):
        """The skip convolutions: f8 [B, 512, H/8, W/8] -> [B, 512, H/8, W/8],
        f4 [B, 256, H/4, W/4] -> [B, 256, H/4, W/4]."""
        return self.up_16_8.skip_conv(f8), self.up_8_4.skip_conv(f4)

    def forward(self, f16, f8, f4, skips=None, head_fp32=False):
        """f16 [B, 1024, h, w], f8, f4 -> logits [B, 1, H, W].

        skips: (s8, s4) from `skips`, batch 1 or B, in place of f8 and f4 (inference, no
        autograd: one frame's skip convolutions shared by all its objects, and the
        intermediate results updated in place; the same arithmetic).
        head_fp32: the last convolution and the x4 upsampling in fp32 under autocast (logits
        float32; without autocast the same arithmetic).
        """
        in_place = skips is not None
        s8, s4 = self.skips(f8, f4) if skips is None else skips
        x = self.compress(f16, in_place)
        x = add_into(s8, up2(x)) if in_place else s8 + up2(x)
        x = self.up_16_8.out_conv(x, in_place)    # [B, 256, H/8, W/8]
        x = add_into(s4, up2(x)) if in_place else s4 + up2(x)
        x = self.up_8_4.out_conv(x, in_place)     # [B, 256, H/4, W/4]
        x = x.relu_() if in_place else F.relu(x)
        with torch.autocast(x.device.type, enabled=False) if head_fp32 \
                else contextlib.nullcontext():
            x = self.pred(x.float() if head_fp32 else x)                      # [B, 1, H/4, W/4]
            return F.interpolate(x, scale_factor=4, mode='bilinear', align_corners=False)
