import torch

from util.tensor_util import pad_divide_by, unpad


def test_pad_to_multiple_of_16_split_evenly():
    x = torch.arange(100 * 181, dtype=torch.float32).view(1, 1, 100, 181)
    y, pad = pad_divide_by(x, 16)
    assert y.shape[-2:] == (112, 192)
    assert pad == (5, 6, 6, 6)                    # extra column on the right
    assert torch.equal(unpad(y, pad), x)
    z, pad = pad_divide_by(torch.zeros(2, 3, 32, 48))
    assert pad == (0, 0, 0, 0) and z.shape == (2, 3, 32, 48)
