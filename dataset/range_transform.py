"""ImageNet normalisation shared by training and inference (no torchvision import: the
arithmetic of torchvision's Normalize, (x - mean) / std per channel, on a copy)."""
import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Normalize:
    """float [..., 3, H, W] -> (x - mean) / std per channel (a new tensor)."""

    def __init__(self, mean, std):
        self.mean, self.std = tuple(mean), tuple(std)

    def __call__(self, x):
        mean = torch.as_tensor(self.mean, dtype=x.dtype, device=x.device).view(-1, 1, 1)
        std = torch.as_tensor(self.std, dtype=x.dtype, device=x.device).view(-1, 1, 1)
        return x.sub(mean).div_(std)


im_normalization = Normalize(IMAGENET_MEAN, IMAGENET_STD)
inv_im_trans = Normalize([-m / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD)],
                         [1 / s for s in IMAGENET_STD])
