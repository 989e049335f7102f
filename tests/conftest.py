"""Session fixtures: thread limits, the repository root, a seeded checkpoint, pristine synthetic
trees."""
import os

import pytest

from helpers import small_trees

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))   # on sys.path: pytest.ini


@pytest.fixture(scope='session', autouse=True)
def _limit_threads():
    import torch
    torch.set_num_threads(2)
    yield


@pytest.fixture(scope='session')
def repo_root():
    return ROOT


@pytest.fixture(scope='module')
def one_thread():
    """One intra-op thread for a module: the 2-core test machine is shared, spinning threads
    cost more than they give on these small tensors."""
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope='module')
def net():
    """The evaluation STCN with seeded random weights (seed 0)."""
    import torch
    from model.eval_network import STCN
    torch.manual_seed(0)
    return STCN().eval()


@pytest.fixture(scope='module')
def ckpt(tmp_path_factory, net):
    """The `net` fixture's weights saved as a plain state_dict checkpoint (stcn.pth)."""
    import torch
    path = tmp_path_factory.mktemp('ckpt') / 'stcn.pth'
    torch.save(net.state_dict(), path)
    return str(path)


@pytest.fixture(scope='module')
def pristine(tmp_path_factory):
    """Synthetic DAVIS (davis_000 train, davis_001 val) and YouTube (1 train, 1 valid) at
    32x48, for tests that copy it and break the copy."""
    return small_trees(tmp_path_factory.mktemp('pristine'), frames=4, seed=1)

