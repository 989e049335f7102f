"""What mixed precision (--amp) means on each device, for inference and training.

Inference (--amp, --amp_dtype): CUDA autocasts to fp16 (both originals) or bf16; a CPU that
computes bf16 natively (AVX512-BF16 / AMX) autocasts to bf16, with channels-last and bf16
convolution weights; any other CPU runs fp32. Training (AMP unless --no_amp): CUDA fp16 with a
gradient scaler (the original); a CPU bf16 only with --cpu_bf16, without a scaler.
"""
import contextlib
import functools

import torch

# /proc/cpuinfo flags of a CPU that computes bf16 natively (x86: AVX512-BF16, AMX)
NATIVE_BF16_FLAGS = ('avx512_bf16', 'amx_bf16')
# --amp_dtype: the autocast dtype of --amp at inference on CUDA
CUDA_AMP_DTYPES = {'fp16': torch.float16, 'bf16': torch.bfloat16}


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
    return next((name for name in NATIVE_BF16_FLAGS if name in flags), None)


def cpu_native_bf16():
    """True where the CPU computes bf16 natively (and oneDNN, which runs it, is built in)."""
    return cpu_bf16_flag() is not None and torch.backends.mkldnn.is_available()


# ----------------------------------------------------------------------------- inference

def inference_amp_dtype(device, cuda_dtype='fp16'):
    """The autocast dtype of --amp at inference: on CUDA `cuda_dtype` (--amp_dtype); on a CPU
    bf16 where it computes bf16 natively; None where AMP does not apply."""
    device = torch.device(device)
    if device.type == 'cuda':
        return CUDA_AMP_DTYPES[cuda_dtype]
    if device.type == 'cpu' and cpu_native_bf16():
        return torch.bfloat16
    return None


def amp_dtype(device, amp=True):
    """inference_amp_dtype for an `amp` setting: True or an --amp_dtype name ('fp16', 'bf16')."""
    return inference_amp_dtype(device, 'bf16' if amp == 'bf16' else 'fp16')


def amp_context(device, amp):
    """torch.autocast for --amp where it applies, else a no-op context."""
    dtype = amp_dtype(device, amp) if amp else None
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=dtype)


def amp_note(device, amp):
    """The one line a script prints about --amp on a CPU (or another non-CUDA device), or
    None (no --amp, or CUDA)."""
    device = torch.device(device)
    if not amp or device.type == 'cuda':
        return None
    if amp_dtype(device, amp) is not None:
        return f'note: --amp: bf16 autocast on this CPU (native bf16: {cpu_bf16_flag()})'
    if device.type == 'cpu':
        return ('note: --amp: this CPU has no native bf16 (no avx512_bf16 / amx_bf16 flag), '
                'running in fp32')
    return f'note: --amp ignored on {device.type}, running in fp32'


def amp_memory_format(device, amp):
    """The layout of the network's weights and input frames: channels-last under CPU bf16
    autocast (where oneDNN's bf16 convolutions are faster in it), else contiguous."""
    if amp and torch.device(device).type == 'cpu' and amp_dtype(device, amp) is not None:
        return torch.channels_last
    return torch.contiguous_format


def prepare_for_amp(net, device, amp):
    """net (in place) in the form --amp runs fastest in on `device`: under CPU bf16 autocast,
    channels-last, and the convolutions' weights stored in bf16 (what autocast casts them to
    at every call: the same results, without the casts), but the decoder's last convolution,
    which runs in fp32. Such a net runs only under that autocast (InferenceCore checks).
    Elsewhere net is left as it is."""
    layout = amp_memory_format(device, amp)
    if layout == torch.channels_last:
        net.to(memory_format=layout)
        dtype = amp_dtype(device, amp)
        for m in net.modules():
            if isinstance(m, torch.nn.Conv2d) and m is not net.decoder.pred:
                m.to(dtype)
    return net


def memory_dtype(device, amp):
    """The memory bank's dtype: the AMP dtype on CUDA (bandwidth), else fp32 (on a CPU the
    readout is a small part of a frame, and fp32 keys and values keep it exact)."""
    if amp and torch.device(device).type == 'cuda':
        return amp_dtype(device, amp)
    return torch.float32


# ----------------------------------------------------------------------------- training

def training_amp(device, cpu_bf16=False):
    """(autocast dtype or None, gradient scaler on) of a training run with mixed precision on
    (no --no_amp): on CUDA fp16 autocast and a gradient scaler, as the original; on a CPU
    that computes bf16 natively and only with --cpu_bf16, bf16 autocast without a scaler
    (bf16 has fp32's exponent range); else fp32."""
    if device.type == 'cuda':
        return torch.float16, True
    if device.type == 'cpu' and cpu_bf16 and cpu_native_bf16():
        return torch.bfloat16, False
    return None, False
