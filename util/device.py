"""The device rules: CUDA when present (or asked for), else CPU; which autocast dtype applies."""
import functools

import torch

from util.errors import UserError

# /proc/cpuinfo flags of a CPU that computes bf16 natively (x86: AVX512-BF16, AMX)
NATIVE_BF16_FLAGS = ('avx512_bf16', 'amx_bf16')


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


def cpu_flags(path='/proc/cpuinfo'):
    """The CPU's feature flags (set of str); empty where the file cannot be read."""
    try:
        with open(path) as f:
            for line in f:
                key, _, value = line.partition(':')
                if key.strip() in ('flags', 'Features'):
                    return set(value.split())
    except OSError:
        pass
    return set()


@functools.lru_cache(maxsize=None)
def cpu_bf16_flag():
    """The native-bf16 flag this CPU reports ('avx512_bf16' / 'amx_bf16'), or None."""
    flags = cpu_flags()
    for name in NATIVE_BF16_FLAGS:
        if name in flags:
            return name
    return None


def cpu_native_bf16():
    """True where the CPU computes bf16 natively (and oneDNN, which runs it, is built in)."""
    return cpu_bf16_flag() is not None and torch.backends.mkldnn.is_available()


# --amp_dtype: the autocast dtype of --amp at inference on CUDA
CUDA_AMP_DTYPES = {'fp16': torch.float16, 'bf16': torch.bfloat16}


def inference_amp_dtype(device, cuda_dtype='fp16'):
    """The autocast dtype of --amp at inference: on CUDA `cuda_dtype` (--amp_dtype; fp16 by
    default, as both originals); on a CPU bf16 where it computes bf16 natively; None where AMP
    does not apply."""
    device = torch.device(device)
    if device.type == 'cuda':
        return CUDA_AMP_DTYPES[cuda_dtype]
    if device.type == 'cpu' and cpu_native_bf16():
        return torch.bfloat16
    return None
