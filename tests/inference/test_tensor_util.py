"""util.tensor_util: padding to a multiple of 16 and back, the per-class argmax."""
import torch

from util.tensor_util import argmax_classes, pad_divide_by, unpad


def test_pad_to_multiple_of_16_split_evenly():
    x = torch.arange(100 * 181, dtype=torch.float32).view(1, 1, 100, 181)
    y, pad = pad_divide_by(x, 16)
    assert y.shape[-2:] == (112, 192)
    assert pad == (5, 6, 6, 6)                    # extra column on the right
    assert torch.equal(unpad(y, pad), x)
    z, pad = pad_divide_by(torch.zeros(2, 3, 32, 48))
    assert pad == (0, 0, 0, 0) and z.shape == (2, 3, 32, 48)


def test_argmax_classes_is_argmax_first_on_ties():
    g = torch.Generator().manual_seed(0)
    for c in (1, 2, 3, 6):
        p = torch.rand(c, 37, 53, generator=g).softmax(0)[:, :, 2:50]     # a strided view
        assert torch.equal(argmax_classes(p), p.argmax(0).to(torch.uint8))
    q = torch.rand(4, 8, 8, generator=g).round(decimals=1)                 # many ties
    q[:, 0, 0] = 0.5
    assert torch.equal(argmax_classes(q), q.argmax(0).to(torch.uint8))
    assert argmax_classes(q)[0, 0] == 0
