"""ImageNet normalisation shared by training and inference."""
import torchvision.transforms as T

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

im_normalization = T.Normalize(mean=IMAGENET_MEAN, std=IMAGENET_STD)
inv_im_trans = T.Normalize(mean=[-m / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD)],
                           std=[1 / s for s in IMAGENET_STD])
