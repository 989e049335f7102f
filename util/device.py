"""The one device rule: CUDA when present (or asked for), else CPU."""
import torch


def pick_device(name=None):
    """torch.device from a user string ('cuda', 'cuda:1', 'cpu') or the default rule."""
    if name:
        dev = torch.device(name)
        if dev.type == 'cuda' and not torch.cuda.is_available():
            from util.errors import UserError
            raise UserError(f'--device {name}: CUDA is not available on this machine')
        return dev
    return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
