"""model.init_weights: a seeded initialisation whose batch-norm statistics are calibrated."""
import numpy as np
import pytest
import torch
from PIL import Image

from model.checkpoint import load_network
from model.network import STCN
from util.errors import UserError
from model.init_weights import main


def test_init_weights_is_seeded_and_calibrates_batch_norm(tmp_path):
    rng = np.random.default_rng(0)
    frames = tmp_path / 'frames' / 'video'
    frames.mkdir(parents=True)
    for i in range(4):
        img = (rng.random((48, 64, 3)) * 255).astype(np.uint8)
        Image.fromarray(img).save(frames / f'{i:05d}.jpg')
    main(['--out', str(tmp_path / 'a.pth'), '--seed', '3'])
    main(['--out', str(tmp_path / 'b.pth'), '--seed', '3'])
    main(['--out', str(tmp_path / 'c.pth'), '--seed', '3', '--calibrate_bn',
          str(tmp_path / 'frames'), '--calibrate_frames', '4'])
    a, b, c = (torch.load(tmp_path / f'{n}.pth') for n in 'abc')
    assert all(torch.equal(a[k], b[k]) for k in a)                 # same seed, same weights
    # calibration changes only batch-norm statistics, and all of them
    changed = {k for k in a if not torch.equal(a[k], c[k])}
    assert changed and all(k.endswith(('running_mean', 'running_var', 'num_batches_tracked'))
                           for k in changed)
    assert 'key_encoder.layer3.5.bn3.running_var' in changed
    assert 'value_encoder.layer3.1.bn2.running_var' in changed
    # first BN of the key encoder: its running mean is now the channel mean of conv1's output
    net = load_network(STCN(), str(tmp_path / 'c.pth')).eval()
    assert torch.count_nonzero(net.key_encoder.bn1.running_mean) > 0
    with pytest.raises(UserError, match='no .jpg frames'):
        main(['--out', str(tmp_path / 'd.pth'), '--calibrate_bn', str(tmp_path / 'nothing')])
    assert not (tmp_path / 'd.pth').exists()
