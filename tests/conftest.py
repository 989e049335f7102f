import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


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
