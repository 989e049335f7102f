"""Seeding of the Python, numpy and torch RNGs, in the main process and in data workers.

The training datasets draw all their randomness from torch's global RNG (frame sampling
and augmentation) and from numpy Generators seeded from it (TPS warps), so `reseed` makes a
sample reproducible. Data workers are reseeded from (base seed, rank, worker id, the seed
torch gives the worker): different on every rank and every worker, different every epoch
(DataLoader draws a fresh base seed per epoch), and reproducible for a given base seed.
"""
import random

import numpy as np
import torch


def reseed(seed):
    """Seed Python's `random`, numpy's global RNG and torch's global RNG with `seed`."""
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)


def worker_seed(base_seed, rank, worker_id, torch_seed):
    """A 63-bit seed mixing the four numbers (numpy SeedSequence hashing)."""
    state = np.random.SeedSequence([int(base_seed) % 2 ** 64, int(rank), int(worker_id),
                                    int(torch_seed) % 2 ** 64]).generate_state(2, np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


class WorkerInit:
    """DataLoader `worker_init_fn`: reseeds random/numpy/torch for this worker and rank.

    A class rather than a closure so it pickles (spawn-started workers).
    """

    def __init__(self, base_seed, rank):
        self.base_seed = int(base_seed)
        self.rank = int(rank)

    def __call__(self, worker_id):
        reseed(worker_seed(self.base_seed, self.rank, worker_id, torch.initial_seed()))

