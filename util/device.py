"""The device rule: CUDA when present (or asked for), else CPU."""

import torch

from util.errors import UserError


def pick_device(name=None):
    """torch.device from a user string ('cuda', 'cuda:1', 'cpu') or the default rule;
    UserError naming --device for anything else or a GPU this machine does not have."""
    if name:
        try:
            dev = torch.device(name)
        except (RuntimeError, ValueError, TypeError):
            dev = None
        if dev is None or dev.type not in ('cpu', 'cuda'):
            raise UserError(f"--device {name}: not a device here (expected 'cpu', 'cuda' or "
                            "'cuda:N')")
        if dev.type == 'cuda' and not torch.cuda.is_available():
            raise UserError(f'--device {name}: CUDA is not available on this machine')
        if dev.type == 'cuda' and dev.index is not None and \
                dev.index >= torch.cuda.device_count():
            raise UserError(f'--device {name}: this machine has {torch.cuda.device_count()} '
                            f'GPU(s) (cuda:0 .. cuda:{torch.cuda.device_count() - 1})')
        return dev
    return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
