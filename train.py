"""Train STCN: stages 0-3, two-shot phase 1 (--semi) and phase 2 (--phase2_train).

    torchrun --nproc_per_node=2 train.py --stage 3 --id phase1 --load_network ckpts/stcn_s0.pth \
        --yv_data util/yv_rand_2frames.json --davis_data util/davis_rand_2frames.json \
        --semi --semi_thres_upper 0.9 --end_warm 70000 --use_teacher --ema_alpha 0.995
    python -m torch.distributed.launch --nproc_per_node=2 train.py ...   (legacy, --local_rank)
    python train.py ...                                                   (one process)

Every flag is in util/hyper_para.py. Runs are written to <save_root>/<date>_<id>/:
hyperparameters.json, TensorBoard events, <date>_<id>_<it>.pth (student), ..._<it>_tea.pth
(teacher) and ..._checkpoint.pth (resume with --load_model).

Data: dataset/training_data.py (the datasets of each stage and data mode, the frame-skip
curriculum), dataset/data_mode.py (which data each iteration trains on), dataset/sampling.py.
The step: model/trainer.py (STCNModel.do_pass; DDP wraps model/triplet.py), its loss
model/losses.py, the phase-2 bank write-back phase2/bank_writer.py. Every input (flags, data folders, split JSONs, banks,
checkpoints, --save_root) is checked before the run folder is created: bad input ends in one
line naming the file, exit status 2.

SIGINT / SIGTERM stop at the end of the current iteration with a resume checkpoint (exit
status 130 / 143); --load_model <run>_checkpoint.pth continues exactly (util/resume.py). A
data error in the middle of a single-process run also saves the resume checkpoint at the
last finished iteration before it is reported.
"""
import datetime
import hashlib
import math
import os
import signal
import sys
import time

import torch

from dataset.data_mode import PHASE2, data_mode
from dataset.reseed import reseed
from dataset.sampling import LOAD_KEY
from dataset.training_data import build_data, data_roots, max_skip_at
from model.trainer import STCNModel
from phase2.bank_writer import BankWriter
from util.distributed import barrier, broadcast_object, cleanup, init_distributed, print_main
from util.errors import UserError
from util.hyper_para import HyperParameters, check_flags
from util.files import atomic_write, ensure_writable_dir
from util.logger import TensorboardLogger
from util.outputs import OutputLock, check_apart
from util.resume import (StopRequest, close_batches, end_on_sigterm, remove_stale_saves,
                         remove_unused_run, restore_rng, run_stoppable, save_resume)
from util.speed import SpeedMeter

SPEED_REPORT_ITERS = 5            # the data / step speed line after this many iterations


def batch_timing(batch, wait):
    """The loop's timing of one batch: seconds waited for it and its samples' mean load
    seconds, measured in the data workers (batch[LOAD_KEY] [B], where present)."""
    timing = {'time/data_wait': wait}
    if LOAD_KEY in batch:
        timing['time/sample_load'] = float(torch.as_tensor(batch[LOAD_KEY]).mean())
    return timing


def weights_digest(net):
    """sha256 over the state_dict (names, shapes and bytes) — equal weights, equal digest."""
    h = hashlib.sha256()
    for k, v in net.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    para = HyperParameters().parse(argv)
    check_flags(para)
    dist_info = init_distributed(para['local_rank'], para['device'])
    run_lock = None
    try:
        if para['benchmark'] and dist_info.device.type == 'cuda':
            torch.backends.cudnn.benchmark = True
        # ---- everything is checked before the run folder is created
        check_apart([('run folder root (--save_root)', para['save_root'])], data_roots(para))
        ensure_writable_dir(para['save_root'], 'run folder root (--save_root)', keep=True)
        data = build_data(para, dist_info, 0)      # every mode a run (or its resume) uses
        date = broadcast_object(datetime.datetime.now().strftime('%b%d_%H.%M.%S'), dist_info)
        run_name = f'{date}_{para["id"]}'
        run_dir = os.path.join(para['save_root'], run_name)
        bank_writer = (BankWriter(data[PHASE2].mix.bank, para['phase2_thres'],
                                  para['phase2_keep_true_labels'], dist_info)
                       if PHASE2 in data else None)
        reseed(para['seed'])              # identical model init on every rank
        logger = TensorboardLogger(run_dir, enabled=dist_info.is_main)   # opens at first write
        model = STCNModel(para, dist_info, logger=logger,
                          save_path=os.path.join(run_dir, run_name), bank_writer=bank_writer)
        start_it, resume = 0, {}
        if para['load_model']:
            if para['load_network']:
                print_main(dist_info, f'--load_model given: --load_network '
                                      f'{para["load_network"]} is not used')
            start_it = model.load_model(para['load_model'], para['iterations'])
            if dist_info.is_main:
                remove_stale_saves(os.path.dirname(os.path.abspath(para['load_model'])))
            resume = model.resume_extra
        elif para['load_network']:
            model.load_network(para['load_network'])

        # ---- the run folder
        para['run_dir'] = run_dir
        para['world_size'] = dist_info.world_size
        if dist_info.is_main:
            os.makedirs(run_dir, exist_ok=True)
            run_lock = OutputLock(run_dir, 'run folder (--id)').__enter__()   # one run in it
            print(f'hyperparameters:\n{para}', flush=True)
            text = para.to_json()
            atomic_write(os.path.join(run_dir, 'hyperparameters.json'),
                         lambda tmp: open(tmp, 'w').write(text))
        if para['load_model']:
            print_main(dist_info, f'resumed {para["load_model"]} at iteration {start_it} '
                                  f'(lr {model.current_lr():.3g})')
        elif para['load_network']:
            print_main(dist_info, f'loaded network {para["load_network"]}')
        model.wrap()
        reseed(para['seed'] + dist_info.rank)   # different in-process randomness per rank
        restore_rng(resume.get('rng'), dist_info)

        try:
            with StopRequest() as stop:
                it, signum, state = train_loop(para, dist_info, model, start_it, data, stop,
                                               resume.get('loop'))
        except BaseException:
            if dist_info.is_main and not model.saves:
                logger.close()
                remove_unused_run(run_dir)
            raise
        if signum:
            name = signal.Signals(signum).name
            print_main(dist_info, f'stopped by {name} after iteration {it}: resume with '
                                  f'--load_model {model.save_path}_checkpoint.pth')
            logger.close()
            return 128 + signum
        if para['iterations'] % para['save_every']:      # else saved by the loop
            save_resume(model, dist_info, it, state)
        barrier(dist_info)
        if para['debug']:
            digest = weights_digest(model.net)
            print(f'rank {dist_info.rank} weights sha256 {digest}', flush=True)
            atomic_write(os.path.join(run_dir, f'rank{dist_info.rank}_weights.sha256'),
                         lambda tmp: open(tmp, 'w').write(digest + '\n'))
        logger.close()
    finally:
        if run_lock is not None:
            run_lock.__exit__()
        cleanup(dist_info)
    return 0


def train_loop(para, dist_info, model, it, data, stop, loop_state=None):
    """Train until para['iterations'] or a stop request.

    Returns (iteration, signal or 0, loop state {'mode', 'epoch', 'pos' (batches of the epoch
    done), 'batch_size', 'world_size'} after the last iteration).

    Per data mode: epoch = it // batches per epoch at the mode's start, position 0 (or the
    epoch and position of a resume checkpoint written in this mode). Saves every save_every
    iterations; on a stop request the resume checkpoint only.
    """
    total, bs = para['iterations'], para['batch_size']
    state, first_it = None, it
    meter = SpeedMeter(bs, para['num_workers'])
    model.start_timer(it)
    while it < total:
        mode = data_mode(para, it)
        d = data[mode]
        bpe = d.batches_per_epoch
        total_epochs = math.ceil(total / bpe)
        ls = loop_state or {}
        same_shape = (ls.get('batch_size'), ls.get('world_size')) == (bs, dist_info.world_size)
        if ls.get('mode') == mode and same_shape:
            epoch, pos = int(ls['epoch']), int(ls['pos'])
        else:                     # a fresh mode (also a resume right at a mode switch)
            if ls.get('mode') == mode:
                print_main(dist_info, 'note: the resume checkpoint was written with another '
                                      'batch size or world size: the epoch restarts here, so '
                                      'the run will not repeat an uninterrupted one exactly')
            epoch, pos = it // bpe, 0
        loop_state = None
        print_main(dist_info, f'data: {mode}, {len(d.mix.dataset)} samples, {bpe} iterations '
                              f'per epoch, {total_epochs} epochs')
        cur_skip = None
        while it < total and data_mode(para, it) == mode:
            if pos >= bpe:
                epoch, pos = epoch + 1, 0
            if para['stage'] != 0:
                skip = max_skip_at(epoch, total_epochs, bl=para['stage'] == 1)
                if skip != cur_skip:
                    print_main(dist_info, f'epoch {epoch}: maximum frame skip {skip}')
                    cur_skip = skip
                d.mix.set_max_skip(skip)
            d.sampler.set_epoch(epoch, start=pos * bs)
            batches = iter(d.loader)
            try:
                while pos < bpe:
                    state = {'mode': mode, 'epoch': epoch, 'pos': pos, 'batch_size': bs,
                             'world_size': dist_info.world_size}
                    start = time.perf_counter()
                    try:
                        batch = next(batches)
                    except UserError:
                        if not dist_info.distributed and it > first_it:
                            save_resume(model, dist_info, it, state, weights=False)   # then report
                        raise
                    wait = time.perf_counter() - start
                    model.do_pass(batch, it, mode, timing=batch_timing(batch, wait))
                    if it > first_it:       # the first batch also waits for workers to start
                        meter.add(wait, time.perf_counter() - start - wait,
                                  batch[LOAD_KEY].tolist() if LOAD_KEY in batch else [])
                        if meter.iters == SPEED_REPORT_ITERS:
                            print_main(dist_info, meter.summary())
                    it, pos = it + 1, pos + 1
                    state['pos'] = pos
                    if it % para['save_every'] == 0:
                        save_resume(model, dist_info, it, state)
                    if it >= total:
                        break
                    signum = stop.agreed(dist_info)
                    if signum:
                        save_resume(model, dist_info, it, state, weights=False)
                        end_on_sigterm(128 + signum)
                        # no rank exits before the checkpoint is on disk: torchrun would
                        # SIGTERM the main rank in the middle of writing it
                        barrier(dist_info)
                        return it, signum, state
                    if data_mode(para, it) != mode:
                        break
            finally:
                close_batches(batches)
    return it, 0, state


if __name__ == '__main__':
    run_stoppable(main)
