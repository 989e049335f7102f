"""Interruption and exact resumption of a training run.

SIGINT (Ctrl-C) or SIGTERM (a scheduler, torchrun) stops training at the end of the current
iteration (StopRequest; every rank agrees on the same iteration), saves
<run>_checkpoint.pth and exits with status 130 (SIGINT) / 143 (SIGTERM): non-zero, so a
`phase1 && phase2` chain does not go on with an unfinished run. A second signal stops at
once without saving. `--load_model <run>_checkpoint.pth` then continues so that the run ends
with the same weights as one never interrupted (CPU, same seed, flags, world size and batch
size): the checkpoint holds the optimiser, scheduler, teacher, every rank's RNG states
(save_resume / restore_rng) and the position in the epoch (dataset.sampling seeds every
sample from it). On CUDA, kernels are not bit-deterministic, so a resumed GPU run matches
statistically, not bit for bit. Data workers ignore SIGINT and delay SIGTERM
(QuietWorkerInit): the trainer shuts them down itself (close_batches).
"""
import os
import random
import shutil
import signal
import sys
import threading

import numpy as np
import torch

from util.distributed import all_gather_objects, print_main
from util.errors import Interrupted, UserError, run_main
from util.outputs import LOCK_NAME, OutputLock, note_removed, remove_temporaries


def rng_state(device):
    """This process's RNG states, as plain lists / tensors (a weights_only checkpoint)."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    state = {'torch': torch.get_rng_state(),
             'numpy': [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)),
                       int(np_state[2]), int(np_state[3]), float(np_state[4])],
             'random': [py_state[0], list(py_state[1]), py_state[2]]}
    if device.type == 'cuda':
        state['cuda'] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state, device):
    torch.set_rng_state(state['torch'])
    n = state['numpy']
    np.random.set_state((n[0], n[1].numpy().astype(np.uint32), n[2], n[3], n[4]))
    r = state['random']
    random.setstate((r[0], tuple(r[1]), r[2]))
    if device.type == 'cuda' and state.get('cuda') is not None:
        torch.cuda.set_rng_state(state['cuda'], device)


def _bad_resume(path, what):
    return UserError(f'{path}: {what}; the resume would not continue the run exactly '
                     '(nothing was written)')


def check_resume(obj, path, params, iterations):
    """A resume checkpoint (--load_model) checked before anything is written: its iteration
    (0 <= it < iterations), a scheduler state, and an optimiser state that fits `params` (the
    optimiser's parameters in order: every state tensor of its parameter's shape and finite,
    finite positive learning rates). UserError naming the file otherwise."""
    it = obj.get('it')
    if isinstance(it, torch.Tensor) and it.numel() == 1 and not it.is_floating_point():
        it = int(it)
    if not isinstance(it, int) or isinstance(it, bool) or it < 0:
        raise _bad_resume(path, f'iteration {it!r} is not a whole number >= 0')
    if it >= iterations:
        raise UserError(f'{path}: the checkpoint is at iteration {it}, not below --iterations '
                        f'{iterations}: nothing to train (raise -i)')
    if not isinstance(obj.get('scheduler'), dict):
        raise _bad_resume(path, 'no scheduler state')
    opt = obj.get('optimizer')
    if not isinstance(opt, dict) or not isinstance(opt.get('state'), dict) or \
            not isinstance(opt.get('param_groups'), list):
        raise _bad_resume(path, 'no optimiser state')
    for g in opt['param_groups']:
        lr = g.get('lr') if isinstance(g, dict) else None
        if isinstance(lr, torch.Tensor) and lr.numel() == 1:
            lr = float(lr)
        if not isinstance(lr, (int, float)) or not (lr > 0 and lr != float('inf')):
            raise _bad_resume(path, f'optimiser learning rate {lr!r} is not a positive finite '
                                    'number')
    for idx, state in opt['state'].items():
        if not isinstance(idx, int) or not 0 <= idx < len(params) or not isinstance(state, dict):
            raise _bad_resume(path, f'optimiser state of parameter {idx!r}: no such parameter')
        for k, v in state.items():
            if not isinstance(v, torch.Tensor):
                continue
            if v.dim() > 0 and v.shape != params[idx].shape:
                raise _bad_resume(path, f'optimiser state {k} of parameter {idx} has shape '
                                        f'{list(v.shape)}, the parameter {list(params[idx].shape)}')
            if v.is_floating_point() and not bool(torch.isfinite(v).all()):
                raise _bad_resume(path, f'optimiser state {k} of parameter {idx} holds NaN or '
                                        'Inf')
    return it


def remove_stale_saves(run_dir):
    """--load_model: the temporary checkpoint files a killed run left in its run folder
    (unless a run is still writing there)."""
    try:
        with OutputLock(run_dir, 'run folder'):
            note_removed(remove_temporaries(run_dir), run_dir)
    except UserError:
        pass                              # a live run holds it: its temporaries are its own


def remove_unused_run(run_dir):
    """Remove a run folder that failed before saving anything (hyperparameters and
    TensorBoard events only): a failed start leaves nothing behind."""
    try:
        names = os.listdir(run_dir)
    except OSError:
        return
    if all(n == 'hyperparameters.json' or n.startswith(('events.out.tfevents', LOCK_NAME))
           for n in names):
        shutil.rmtree(run_dir, ignore_errors=True)


def restore_rng(states, dist_info):
    """Set this rank's RNG states from a resume checkpoint (same world size only)."""
    if not states:
        return
    if len(states) != dist_info.world_size:
        print_main(dist_info, f'note: the checkpoint was written by {len(states)} process(es), '
                              f'this run has {dist_info.world_size}: RNG states not restored')
        return
    set_rng_state(states[dist_info.rank], dist_info.device)


def save_resume(model, dist_info, it, loop_state, weights=True):
    """Weights (unless weights=False) and the resume checkpoint with every rank's RNG states
    and the loop position. A collective when distributed: every rank calls it."""
    states = all_gather_objects(rng_state(dist_info.device), dist_info)
    model.save(it, extra={'loop': loop_state, 'rng': states}, weights=weights)
    model.saves += 1


class StopRequest:
    """SIGINT/SIGTERM during training: the first one asks for a stop at the end of the current
    iteration (a resume checkpoint is saved there); a second one stops at once, unsaved."""

    def __init__(self):
        self.signum = 0
        self._previous = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM):
                self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc):
        for s, h in self._previous.items():
            if signal.getsignal(s) == self._handle:     # else replaced by end_on_sigterm
                signal.signal(s, h)
        self._previous = {}

    def _handle(self, signum, frame):
        if self.signum:
            raise KeyboardInterrupt if signum == signal.SIGINT else Interrupted(signum)
        self.signum = signum          # no printing here: the handler may interrupt a print

    def agreed(self, dist_info):
        """The signal any rank received (0 if none); a collective when distributed, so that
        every rank stops after the same iteration."""
        if not dist_info.distributed:
            return self.signum
        import torch.distributed as dist
        flag = torch.tensor([self.signum], dtype=torch.int64,
                            device=dist_info.device if dist_info.device.type == 'cuda' else 'cpu')
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return int(flag.item())


def end_on_sigterm(status):
    """Once this rank's part of a stop's checkpoint is done: a SIGTERM ends the process at once
    with the stop's exit status. torchrun SIGTERMs the other ranks as soon as one exits
    non-zero, which can reach a rank still shutting down; it stays installed to the end."""
    def handler(signum, frame):
        exit_now(status)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handler)


def exit_now(status):
    """Flush stdout/stderr and end the process with `status`, skipping interpreter teardown."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, RuntimeError, ValueError):   # e.g. interrupted inside a print
            pass
    os._exit(status)


WORKER_TERM_GRACE_S = 20


def _worker_sigterm(signum, frame):
    """In a data worker: SIGTERM (e.g. sent to the whole process group) does not kill the
    worker at once, so that the trainer can finish its iteration and save; the worker
    leaves by itself after a grace period, so a parent's terminate() never waits forever."""
    timer = threading.Timer(WORKER_TERM_GRACE_S, os._exit, args=(128 + signum,))
    timer.daemon = True
    timer.start()


class QuietWorkerInit:
    """worker_init_fn: data workers ignore SIGINT (Ctrl-C reaches the whole process group;
    the trainer handles it and shuts its workers down) and delay SIGTERM, then the project's
    per-worker reseeding."""

    def __init__(self, inner):
        self.inner = inner

    def __call__(self, worker_id):
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, _worker_sigterm)
        self.inner(worker_id)


def close_batches(batches):
    """Shut a DataLoader iterator's workers down now. Waiting for garbage collection is not
    enough: an exception's traceback can keep the iterator alive until interpreter exit,
    where multiprocessing would SIGTERM (delayed by QuietWorkerInit) and join the workers."""
    shutdown = getattr(batches, '_shutdown_workers', None)
    if shutdown is not None:
        shutdown()


def run_stoppable(main):
    """util.errors.run_main for train.py: a stop (130/143) ends without the interpreter's
    teardown. The teardown resets the signal handlers to the defaults, and torchrun's SIGTERM
    to the other ranks would then kill a rank whose stop is saved (-15 instead of the stop's
    status)."""
    try:
        run_main(main)
    except SystemExit as e:
        if e.code in (128 + signal.SIGINT, 128 + signal.SIGTERM):
            exit_now(e.code)
        raise
