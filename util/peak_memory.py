"""The peak memory of this process, as every eval run prints it beside its FPS.

CUDA: the most memory tensors have held on the device since the process started
(torch.cuda.max_memory_allocated). CPU: the process's peak resident set size
(resource.getrusage ru_maxrss: KiB on Linux, bytes on macOS).
"""
import resource
import sys

import torch


def peak_memory(device):
    """(bytes, what was measured) for `device` (a torch.device or its name)."""
    device = torch.device(device)
    if device.type == 'cuda':
        return torch.cuda.max_memory_allocated(device), 'CUDA max allocated'
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return (rss if sys.platform == 'darwin' else rss * 1024), 'CPU peak RSS of the process'


def peak_memory_text(device):
    """'peak memory 812.4 MiB (CPU peak RSS of the process)'."""
    n, kind = peak_memory(device)
    return f'peak memory {n / 2 ** 20:.1f} MiB ({kind})'
