"""Fixtures of the bad-input tests: a private copy of the synthetic trees, one network per module."""
import shutil

import pytest
import torch

import eval_driver
import video_runner


@pytest.fixture
def data(pristine, tmp_path):
    """A private copy of the trees, with the paths the tests use."""
    root = tmp_path / 'data'
    shutil.copytree(pristine, root)
    davis, yv = root / 'DAVIS', root / 'YouTube'
    tv = davis / '2017' / 'trainval'
    return {
        'root': root, 'davis': str(davis), 'yv': str(yv),
        'd_im': tv / 'JPEGImages' / '480p', 'd_gt': tv / 'Annotations' / '480p',
        'd_split': str(davis / '2017' / 'davis_rand_2frames.json'),
        'y_im': yv / 'train_480p' / 'JPEGImages', 'y_gt': yv / 'train_480p' / 'Annotations',
        'y_split': str(yv / 'yv_rand_2frames.json'),
        'tv': tv, 'y_sparse': yv / 'phase2' / 'yv_gt_480p',
        'save': tmp_path / 'saves', 'tmp': tmp_path,
    }


@pytest.fixture(scope='module')
def cached_net(ckpt):
    return video_runner.load_model(ckpt, torch.device('cpu'))


@pytest.fixture
def fast_load(monkeypatch, cached_net):
    """The eval scripts get the one network built for this module (building one costs ~2 s)."""
    monkeypatch.setattr(eval_driver, 'load_model', lambda path, device, amp=False: cached_net)
