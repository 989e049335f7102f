"""Process-group setup for torchrun, the legacy launcher, or one plain process.

torchrun and `python -m torch.distributed.launch` both export RANK, WORLD_SIZE, LOCAL_RANK,
MASTER_ADDR and MASTER_PORT (the legacy launcher also passes --local_rank / --local-rank).
A plain `python train.py` has none of these: world size 1, no process group.
Backend: NCCL on GPU, gloo on CPU.
"""
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from util.device import pick_device


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device('cpu')

    @property
    def distributed(self):
        return self.world_size > 1

    @property
    def is_main(self):
        return self.rank == 0


def init_distributed(local_rank=None, device=None):
    """Read the launcher's environment, pick the device, init the process group if world > 1.

    local_rank: the --local_rank flag (used only when LOCAL_RANK is not in the environment).
    device: the --device flag (None: CUDA if present, else CPU).
    """
    world = int(os.environ.get('WORLD_SIZE', '1'))
    rank = int(os.environ.get('RANK', '0'))
    env_local = os.environ.get('LOCAL_RANK')
    local = int(env_local) if env_local is not None else int(local_rank or 0)
    dev = pick_device(device)
    if dev.type == 'cuda':
        if dev.index is None or world > 1:      # one GPU per local process
            dev = torch.device('cuda', local % torch.cuda.device_count())
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend='nccl' if dev.type == 'cuda' else 'gloo',
                                init_method='env://', rank=rank, world_size=world)
    return DistInfo(rank=rank, world_size=world, local_rank=local, device=dev)


def print_main(info, text):
    """Print on the main process only."""
    if info.is_main:
        print(text, flush=True)


def barrier(info):
    if info.distributed:
        dist.barrier()


def cleanup(info):
    if info.distributed and dist.is_initialized():
        dist.destroy_process_group()


def broadcast_object(obj, info, src=0):
    """The object of rank `src` on every rank (pickled; small objects only)."""
    if not info.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def all_gather_objects(obj, info):
    """[object of rank 0, object of rank 1, ...] on every rank."""
    if not info.distributed:
        return [obj]
    out = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def average_over_ranks(values, info):
    """Average a dict of floats over ranks; a key missing on some ranks is averaged over the
    ranks that have it. Every rank must call it at the same point."""
    if not info.distributed:
        return dict(values)
    sums, counts = {}, {}
    for d in all_gather_objects(dict(values), info):
        for k, v in d.items():
            sums[k] = sums.get(k, 0.0) + float(v)
            counts[k] = counts.get(k, 0) + 1
    return {k: sums[k] / counts[k] for k in sums}
