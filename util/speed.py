"""How fast training data loads against how fast the trainer steps.

A data worker loads its samples one after another in one process, so its rate is
1 / (seconds per sample); `workers` of them keep a trainer busy when their combined rate
covers batch_size samples per step.
"""
import math


def workers_needed(sample_seconds, batch_size, step_seconds):
    """The fewest workers whose samples keep up with steps of `step_seconds` (>= 1)."""
    if step_seconds <= 0:
        return float('inf')
    return max(1, math.ceil(batch_size * sample_seconds / step_seconds - 1e-9))


class SpeedMeter:
    """Per-iteration data wait, step compute time and per-sample load time.

    add(wait, step, load): seconds the trainer waited for the batch, seconds of the step
    itself (forward, backward, optimiser) and the load seconds of each sample of the batch
    (as its worker measured them).
    """

    def __init__(self, batch_size, num_workers):
        self.batch_size, self.num_workers = int(batch_size), int(num_workers)
        self.iters = 0
        self.wait = self.step = self.load = 0.0
        self.samples = 0

    def add(self, wait, step, load):
        self.iters += 1
        self.wait += wait
        self.step += step
        self.load += float(sum(load))
        self.samples += len(load)

    def sample_seconds(self):
        return self.load / self.samples if self.samples else float('nan')

    def samples_per_worker(self):
        """Samples per second one worker loads."""
        s = self.sample_seconds()
        return 1.0 / s if s > 0 else float('nan')

    def step_seconds(self):
        return self.step / self.iters if self.iters else float('nan')

    def wait_share(self):
        """Share of the iterations' wall time spent waiting for data."""
        total = self.wait + self.step
        return self.wait / total if total > 0 else float('nan')

    def summary(self):
        """One line: the loading rate per worker next to the step rate, and the verdict."""
        per_worker = self.samples_per_worker()
        step = self.step_seconds()
        need = workers_needed(self.sample_seconds(), self.batch_size, step)
        if self.num_workers > 0:
            loaders = (f'{self.num_workers} workers: {per_worker * self.num_workers:.2f} '
                       'samples/s')
        else:
            loaders = '--num_workers 0: loaded in the trainer, between steps'
        verdict = (f'keeping up needs >= {need} worker{"s" if need > 1 else ""}'
                   + (' (more than --num_workers)' if need > self.num_workers else ''))
        return (f'speed over {self.iters} iterations: data {per_worker:.2f} samples/s per '
                f'worker ({loaders}); training step {step:.3f} s = {1 / step:.2f} it/s = '
                f'{self.batch_size / step:.2f} samples/s at batch {self.batch_size}; '
                f'waiting for data {100 * self.wait_share():.0f} % of the time; {verdict}')
