"""Fixtures of the bad-input tests (test_reliability_inputs.py, test_robustness.py)."""
import shutil

import pytest


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
        'save': tmp_path / 'saves', 'tmp': tmp_path,
    }
