"""The two ResNet trunks of STCN, without torchvision (so inference does not import it).

ResNet18Trunk: stem + layers 1-3 for the value encoder, with extra input channels; unlike
torchvision, every conv has a bias (the published STCN checkpoints carry them). Input: image
(3) + this object's mask (1) [+ the other objects' masks (1)].
ResNet50: torchvision's ResNet-50 layout (parameter names, bias-free convs) and random
initialisation, draw for draw: the key encoder takes its stem and layers 1-3.
"""
import torch.nn as nn


def conv3x3(in_planes, out_planes, stride=1):
    return nn.Conv2d(in_planes, out_planes, 3, stride=stride, padding=1, bias=True)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


def make_layer(block, inplanes, planes, blocks, stride=1, bias=False):
    """`blocks` blocks, the first with stride and, where the shape changes, a 1x1 conv +
    batch norm skip (built before the first block: the generator's draw order)."""
    out = planes * block.expansion
    downsample = None
    if stride != 1 or inplanes != out:
        downsample = nn.Sequential(nn.Conv2d(inplanes, out, 1, stride=stride, bias=bias),
                                   nn.BatchNorm2d(out))
    layers = [block(inplanes, planes, stride, downsample)]
    layers += [block(out, planes) for _ in range(1, blocks)]
    return nn.Sequential(*layers)


class ResNet18Trunk(nn.Module):
    """conv1/bn1/maxpool (stride 4), layer1 (64, /4), layer2 (128, /8), layer3 (256, /16)."""

    def __init__(self, in_channels):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=True)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = make_layer(BasicBlock, 64, 64, 2, bias=True)
        self.layer2 = make_layer(BasicBlock, 64, 128, 2, stride=2, bias=True)
        self.layer3 = make_layer(BasicBlock, 128, 256, 2, stride=2, bias=True)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')
                nn.init.zeros_(m.bias)

    def forward(self, x):                         # x: [B, C_in, H, W] -> [B, 256, H/16, W/16]
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer3(self.layer2(self.layer1(x)))


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (stride) -> 1x1 (x4 channels), batch norm after each, identity or
    downsample skip; attribute order as torchvision's (its state_dict order)."""
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        # the skip after the main path, as torchvision: the backward then sums x's two
        # gradients in the same order (bitwise the same training steps)
        out += x if self.downsample is None else self.downsample(x)
        return self.relu(out)


class ResNet50(nn.Module):
    """ResNet-50 built module by module in torchvision's order, then its init loop (He
    normal, fan-out, for convs; 1 / 0 for batch norm): under one seed its weights equal
    torchvision.models.resnet50(weights=None)'s. layer4, avgpool and fc are built (they draw
    from the generator) so the trunk's draws match."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = make_layer(Bottleneck, 64, 64, 3)
        self.layer2 = make_layer(Bottleneck, 256, 128, 4, stride=2)
        self.layer3 = make_layer(Bottleneck, 512, 256, 6, stride=2)
        self.layer4 = make_layer(Bottleneck, 1024, 512, 3, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(2048, 1000)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
