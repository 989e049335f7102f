"""Resumable sampling: one rank's sample order per epoch, each sample drawn with its own seed.

Each sample's augmentation is seeded from (seed, data mode, rank, epoch, position in the
epoch) rather than from a worker's running RNG, so a sample is the same whichever worker
loads it and whatever came before; a resumed run starts the sampler at its position in the
epoch, and the skipped samples are neither loaded nor seeded.
"""
import math
import random
import time

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from dataset.data_mode import MODES


def sample_seed(seed, mode, rank, epoch, pos):
    """The 63-bit seed of one sample: (seed, data mode, rank, epoch, position in the epoch)."""
    state = np.random.SeedSequence([int(seed) % 2 ** 64, MODES.index(mode), int(rank),
                                    int(epoch), int(pos)]).generate_state(2, np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


class EpochSampler(Sampler):
    """One rank's shuffled sample order for one epoch, each index paired with its seed.

    The order is DistributedSampler's (shuffle=True, drop_last=False): torch.randperm seeded
    with seed + epoch, padded to a multiple of the world size, every world-th index from
    `rank`. set_epoch(epoch, start) starts at position `start` of that epoch (resume): the
    skipped samples are neither loaded nor seeded.
    """

    def __init__(self, n, num_replicas, rank, seed, mode):
        self.n, self.num_replicas, self.rank = int(n), int(num_replicas), int(rank)
        self.seed, self.mode = int(seed), mode
        self.per_rank = math.ceil(self.n / self.num_replicas)
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch, start=0):
        self.epoch, self.start = int(epoch), int(start)

    def order(self):
        g = torch.Generator()
        g.manual_seed(self.seed + self.epoch)
        idx = torch.randperm(self.n, generator=g).tolist()
        total = self.per_rank * self.num_replicas
        while len(idx) < total:
            idx += idx[:total - len(idx)]
        return idx[self.rank:total:self.num_replicas]

    def __iter__(self):
        idx = self.order()
        for pos in range(self.start, len(idx)):
            yield idx[pos], sample_seed(self.seed, self.mode, self.rank, self.epoch, pos)

    def __len__(self):
        return max(0, self.per_rank - self.start)


def _seed_cpu(seed):
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.default_generator.manual_seed(seed)


LOAD_KEY = 'load_seconds'


class SeededSamples(Dataset):
    """dataset[(index, seed)]: the sample drawn with random/numpy/torch (CPU) seeded by `seed`;
    the caller's RNG states are restored afterwards (num_workers 0 loads in the trainer).
    A dict sample also holds LOAD_KEY: the seconds its loading took (float; [B] collated)."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, item):
        idx, seed = item
        saved = random.getstate(), np.random.get_state(), torch.get_rng_state()
        _seed_cpu(seed)
        start = time.perf_counter()
        try:
            sample = self.dataset[idx]
            if isinstance(sample, dict):
                sample = dict(sample, **{LOAD_KEY: time.perf_counter() - start})
            return sample
        finally:
            random.setstate(saved[0])
            np.random.set_state(saved[1])
            torch.set_rng_state(saved[2])
