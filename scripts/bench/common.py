"""Small helpers shared by the benchmark scripts: peak memory, device naming, result files."""
import contextlib
import ctypes
import gc
import json
import os
import platform
import re
import statistics
import time

import torch

from inference_core import sync
from util.files import atomic_write


def _status_kb(field):
    try:
        with open('/proc/self/status') as f:
            m = re.search(rf'^{field}:\s+(\d+) kB', f.read(), re.M)
        return int(m.group(1)) if m else None
    except OSError:
        return None


def _malloc_trim():
    """glibc malloc_trim(0): return free heap pages to the system (no-op elsewhere)."""
    try:
        ctypes.CDLL('libc.so.6').malloc_trim(0)
    except (OSError, AttributeError):
        pass


class PeakMemory:
    """Peak memory of one measured section.

    CUDA: torch.cuda.max_memory_allocated after a reset (MB). CPU: the process's peak resident
    set (VmHWM, MB), reset by writing 5 to /proc/self/clear_refs where Linux allows it; where
    it cannot be reset the figure is the peak since the process started (`reset` False).
    Freed heap memory is handed back (malloc_trim) before each section, so that a section's
    rise does not depend on what ran before it.
    """

    def __init__(self, device):
        self.device = torch.device(device)
        self.reset_ok = True
        self.start_mb = 0.0

    def current_mb(self):
        if self.device.type == 'cuda':
            return torch.cuda.memory_allocated(self.device) / 2 ** 20
        kb = _status_kb('VmRSS')
        return float('nan') if kb is None else kb / 1024

    def reset(self):
        """Start a measured section (also records the memory in use at its start)."""
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            gc.collect()
            _malloc_trim()          # hand freed heap back, so both runs start alike
            try:
                with open('/proc/self/clear_refs', 'w') as f:
                    f.write('5')
            except OSError:
                self.reset_ok = False
        self.start_mb = self.current_mb()

    def above_start_mb(self):
        """Peak minus the memory in use when the section started (its working memory)."""
        return self.peak_mb() - self.start_mb

    def peak_mb(self):
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)
            return torch.cuda.max_memory_allocated(self.device) / 2 ** 20
        kb = _status_kb('VmHWM')
        return float('nan') if kb is None else kb / 1024

    @property
    def kind(self):
        if self.device.type == 'cuda':
            return 'CUDA max allocated'
        return 'CPU peak RSS' + ('' if self.reset_ok else ' (since process start)')


def describe_device(device):
    """One line naming the machine: GPU name, or CPU model and thread count."""
    device = torch.device(device)
    if device.type == 'cuda':
        return f'{torch.cuda.get_device_name(device)} (CUDA), torch {torch.__version__}'
    model = platform.processor() or 'CPU'
    try:
        with open('/proc/cpuinfo') as f:
            m = re.search(r'^model name\s*:\s*(.+)$', f.read(), re.M)
        if m:
            model = m.group(1).strip()
    except OSError:
        pass
    return (f'{model}, {os.cpu_count()} logical CPUs, {torch.get_num_threads()} torch threads, '
            f'torch {torch.__version__}')


def load_note():
    """'load average 1.2 / 1.0 / 0.9' (1, 5, 15 min): other processes on the machine skew
    timings; ratios are measured alternating in one process, so they are skewed less."""
    try:
        a, b, c = os.getloadavg()
    except OSError:
        return 'load average unknown'
    return f'load average {a:.2f} / {b:.2f} / {c:.2f}'


def write_json(path, obj):
    """Write results atomically (other tools may read the file while it is rewritten)."""
    def write(tmp):
        with open(tmp, 'w') as f:
            json.dump(obj, f, indent=1, sort_keys=True)
            f.write('\n')
    atomic_write(path, write)
    print(f'results written to {path}')


def median(xs):
    return statistics.median(xs) if xs else float('nan')


PARTS = ('key', 'readout', 'decode', 'value')


class PartTimer:
    """Wall seconds per part ('key', 'readout', 'decode', 'value'), device synchronised at
    the start and end of each part: `with timer('key'): ...`."""

    def __init__(self, device):
        self.device = torch.device(device)
        self.seconds = {p: 0.0 for p in PARTS}
        self.calls = {p: 0 for p in PARTS}

    @contextlib.contextmanager
    def __call__(self, part):
        sync(self.device)
        start = time.perf_counter()
        try:
            yield
        finally:
            sync(self.device)
            self.seconds[part] += time.perf_counter() - start
            self.calls[part] += 1


class NoTimer:
    def __call__(self, part):
        return contextlib.nullcontext()
