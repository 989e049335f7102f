"""Train STCN: stages 0-3, two-shot phase 1 (--semi) and phase 2 (--phase2_train).

    torchrun --nproc_per_node=2 train.py --stage 3 --id phase1 --load_network ckpts/stcn_s0.pth \
        --yv_data util/yv_rand_2frames.json --davis_data util/davis_rand_2frames.json \
        --semi --semi_thres_upper 0.9 --end_warm 70000 --use_teacher --ema_alpha 0.995
    python -m torch.distributed.launch --nproc_per_node=2 train.py ...   (legacy, --local_rank)
    python train.py ...                                                   (one process)

Every flag is in util/hyper_para.py. Runs are written to <save_root>/<date>_<id>/:
hyperparameters.json, TensorBoard events, <date>_<id>_<it>.pth (student), ..._<it>_tea.pth
(teacher) and ..._checkpoint.pth (resume with --load_model).

Data (SPEC §4): stage 0 the static image sets, stage 1 BL30K, stages 2/3 DAVIS 2017 train x5
+ YouTube-VOS train (two-shot when --davis_data / --yv_data name split JSONs; phase 2 from
--phase2_train on, for each data set that has a bank: --phase2_davis / --phase2_yv). The
maximum frame skip follows STCN's curriculum (5, then 10, 15, 20, 25 at 10/20/30/40% of the
epochs and 5 again at 90%; 80% for BL30K); YouTube uses skip // 5.

Every input (flags, data folders, split JSONs, banks, checkpoints, --save_root) is checked
before the run folder is created: bad input ends in one line naming the file, exit status 2.

Interruption and exact resumption:
  SIGINT (Ctrl-C) or SIGTERM (a scheduler, torchrun) stops training at the end of the current
  iteration, saves <run>_checkpoint.pth and exits with status 130 (SIGINT) / 143 (SIGTERM):
  non-zero, so a `phase1 && phase2` chain does not go on with an unfinished run. A second
  signal stops at once without saving. `--load_model <run>_checkpoint.pth` then continues so
  that the run ends with the same weights as one never interrupted (CPU, same seed, flags,
  world size and batch size): the checkpoint holds the optimiser, scheduler, teacher, every
  rank's RNG states and the position in the epoch. Each sample's augmentation is seeded
  from (seed, data mode, rank, epoch, position) rather than from a worker's running RNG, so
  a sample is the same whichever worker loads it and whatever came before; resuming skips
  the consumed part of the epoch in the sampler without loading it. (On CUDA, kernels are
  not bit-deterministic, so a resumed GPU run matches statistically, not bit for bit.)
  A data error in the middle of a single-process run also saves the resume checkpoint at
  the last finished iteration before it is reported.
"""
import datetime
import hashlib
import math
import os
import random
import signal
import sys
import threading

import numpy as np
import torch
from torch.utils.data import ConcatDataset, DataLoader, Dataset, Sampler

from util.distributed import (all_gather_objects, barrier, broadcast_object, cleanup,
                              init_distributed)
from util.errors import Interrupted, UserError, run_main
from util.io import davis_2017_dir, read_list, require_dir

SKIP_VALUES = (10, 15, 20, 25, 5)
SKIP_FRACTIONS = (0.1, 0.2, 0.3, 0.4, 0.9)
SKIP_FRACTIONS_BL = (0.1, 0.2, 0.3, 0.4, 0.8)
START_SKIP = 5
STATIC_SETS = (('fss', 0, 1), ('DUTS-TR', 1, 1), ('DUTS-TE', 1, 1), ('ecssd', 1, 1),
               ('BIG_small', 1, 5), ('HRSOD_small', 1, 5))     # (folder, method, repeats)


def max_skip_at(epoch, total_epochs, bl=False):
    """The curriculum's maximum frame skip for `epoch` (0-based) of `total_epochs`."""
    skip = START_SKIP
    for frac, value in zip(SKIP_FRACTIONS_BL if bl else SKIP_FRACTIONS, SKIP_VALUES):
        if epoch >= round(total_epochs * frac):
            skip = value
    return skip


def data_mode(para, it):
    """'phase2', 'semi' or 'base': which data the iteration `it` trains on."""
    if para['phase2_train'] >= 0 and it >= para['phase2_train']:
        return 'phase2'
    if para['semi'] and it > para['end_warm']:      # the step at end_warm is still warm-up
        return 'semi'
    return 'base'


MODES = ('base', 'semi', 'phase2')


def check_flags(para):
    """Mutually inconsistent flags: one UserError saying which flags and why."""
    two_shot = para['davis_data'] or para['yv_data']
    if para['stage'] < 2 and (two_shot or para['semi'] or para['phase2_train'] >= 0):
        raise UserError(f'--stage {para["stage"]}: two-shot / --semi / --phase2_* flags need '
                        'the video stages 2 or 3')
    if para['semi'] and not two_shot:
        raise UserError('--semi needs the labeled-frame splits: give --davis_data and/or '
                        '--yv_data')
    if para['phase2_train'] >= 0 and not (para['phase2_yv'] or para['phase2_davis']):
        raise UserError('--phase2_train is set but neither --phase2_yv nor --phase2_davis names '
                        'a pseudo-label bank')
    if para['phase2_train'] < 0 and (para['phase2_yv'] or para['phase2_davis']):
        raise UserError('--phase2_yv / --phase2_davis name a pseudo-label bank but phase 2 is off '
                        '(give --phase2_train IT, e.g. 0)')
    if para['update_pseudo_bank'] >= 0 and para['phase2_train'] < 0:
        raise UserError('--update_pseudo_bank needs phase 2 (--phase2_train and a bank: '
                        '--phase2_yv / --phase2_davis)')


class DataMix:
    """The datasets of one stage / mode; max_jump of the video sets follows the curriculum."""

    def __init__(self, para, mode):
        from dataset.static_dataset import StaticTransformDataset
        from dataset.vos_dataset import VOSDataset
        from util.make_two_shot_split import load_split
        self.bl = para['stage'] == 1
        self.videos = []                  # [(dataset, skip divisor)]
        self.bank = {}                    # video -> bank entry (phase 2)
        crop = para['crop_size']
        if para['stage'] == 0:
            root = require_dir(para['static_root'], 'static image root (--static_root)')
            parts = []
            for name, method, rep in STATIC_SETS:
                folder = os.path.join(root, name)
                if os.path.isdir(folder):
                    parts += [StaticTransformDataset(folder, method=method, crop_size=crop)] * rep
            if not parts:
                raise UserError(f'{root}: none of {", ".join(s[0] for s in STATIC_SETS)} found')
            self.dataset = ConcatDataset(parts)
            return
        if para['stage'] == 1:
            root = require_dir(para['bl_root'], 'BL30K root (--bl_root)')
            ds = VOSDataset(os.path.join(root, 'JPEGImages'), os.path.join(root, 'Annotations'),
                            START_SKIP, is_bl=True, crop_size=crop)
            self.videos.append((ds, 1))
            self.dataset = ds
            return
        semi = mode == 'semi'
        davis = os.path.join(davis_2017_dir(para['davis_root']), 'trainval')
        davis_sets = dict(
            im=os.path.join(davis, 'JPEGImages', '480p'),
            gt=os.path.join(davis, 'Annotations', '480p'),
            subset=read_list(os.path.join(davis, 'ImageSets', '2017', 'train.txt')),
            split=para['davis_data'], bank=para['phase2_davis'], divisor=1, repeat=5)
        yv = os.path.join(para['yv_root'], 'train_480p')
        yv_sets = dict(im=os.path.join(yv, 'JPEGImages'), gt=os.path.join(yv, 'Annotations'),
                       subset=None, split=para['yv_data'], bank=para['phase2_yv'], divisor=5,
                       repeat=1)
        parts = []
        for d in (davis_sets, yv_sets):
            require_dir(d['im'], 'frame folder')
            split = load_split(d['split'], max_frames=10 ** 6) if d['split'] else None
            if mode == 'phase2' and d['bank']:
                bank = os.path.join(para['phase2_root'], d['bank']) if para['phase2_root'] \
                    else d['bank']
                require_dir(bank, 'pseudo-label bank')
                ds = VOSDataset(d['im'], d['gt'], START_SKIP, subset=d['subset'],
                                pseudo_root=bank, labeled_frames=d['split'], crop_size=crop)
                for v in ds.videos:
                    self.bank[v] = {'im_root': d['im'], 'gt_root': d['gt'], 'bank_root': bank,
                                    'labeled': {os.path.splitext(n)[0]
                                                for n in (split or {}).get(v, [])}}
            elif split is not None:
                ds = VOSDataset(d['im'], d['gt'], START_SKIP, subset=d['subset'],
                                two_shot=d['split'], semi=semi, crop_size=crop)
            else:
                ds = VOSDataset(d['im'], d['gt'], START_SKIP, subset=d['subset'],
                                crop_size=crop)
            self.videos.append((ds, d['divisor']))
            parts += [ds] * d['repeat']
        self.dataset = ConcatDataset(parts)

    def set_max_skip(self, skip):
        for ds, divisor in self.videos:
            ds.max_jump = max(1, skip // divisor)



# ----------------------------------------------------------------------------- resumable data

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


class SeededSamples(Dataset):
    """dataset[(index, seed)]: the sample drawn with random/numpy/torch (CPU) seeded by `seed`;
    the caller's RNG states are restored afterwards (num_workers 0 loads in the trainer)."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, item):
        idx, seed = item
        saved = random.getstate(), np.random.get_state(), torch.get_rng_state()
        _seed_cpu(seed)
        try:
            return self.dataset[idx]
        finally:
            random.setstate(saved[0])
            np.random.set_state(saved[1])
            torch.set_rng_state(saved[2])


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


class ModeData:
    """DataMix + sampler + loader of one data mode."""

    def __init__(self, para, mode, dist_info):
        from dataset.reseed import make_worker_init_fn
        self.mode = mode
        self.mix = DataMix(para, mode)
        self.sampler = EpochSampler(len(self.mix.dataset), dist_info.world_size, dist_info.rank,
                                    para['seed'], mode)
        self.batches_per_epoch = self.sampler.per_rank // para['batch_size']
        if self.batches_per_epoch == 0:
            raise UserError(f'{len(self.mix.dataset)} training samples ({mode} data) over '
                            f'{dist_info.world_size} process(es) do not fill one batch of '
                            f'{para["batch_size"]}; lower --batch_size')
        self.loader = DataLoader(
            SeededSamples(self.mix.dataset), batch_size=para['batch_size'], sampler=self.sampler,
            num_workers=para['num_workers'], drop_last=True,
            pin_memory=dist_info.device.type == 'cuda',
            worker_init_fn=QuietWorkerInit(make_worker_init_fn(para['seed'], dist_info.rank)),
            generator=torch.Generator().manual_seed(para['seed'] + dist_info.rank))


def modes_reached(para, start_it):
    """The data modes iterations start_it .. iterations-1 use, in order."""
    points = [start_it] + [p for p in (para['end_warm'] + 1 if para['semi'] else -1,
                                       para['phase2_train']) if start_it < p < para['iterations']]
    out = []
    for it in sorted(points):
        m = data_mode(para, it)
        if m not in out:
            out.append(m)
    return out


def build_data(para, dist_info, start_it):
    """{mode: ModeData} for every mode the run reaches: all data is checked before training."""
    return {m: ModeData(para, m, dist_info) for m in modes_reached(para, start_it)}


# ----------------------------------------------------------------------------- RNG states

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


# ----------------------------------------------------------------------------- signals

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


# ----------------------------------------------------------------------------- main

def weights_digest(net):
    """sha256 over the state_dict (names, shapes and bytes) — equal weights, equal digest."""
    h = hashlib.sha256()
    for k, v in net.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def main(argv=None):
    from dataset.reseed import reseed
    from model.model import STCNModel
    from util.hyper_para import HyperParameters
    from util.io import atomic_write, ensure_writable_dir
    from util.logger import TensorboardLogger

    argv = sys.argv[1:] if argv is None else list(argv)
    para = HyperParameters().parse(argv)
    check_flags(para)
    dist_info = init_distributed(para['local_rank'], para['device'])
    try:
        if para['benchmark'] and dist_info.device.type == 'cuda':
            torch.backends.cudnn.benchmark = True
        # ---- everything is checked before the run folder is created
        ensure_writable_dir(para['save_root'], 'run folder root (--save_root)', keep=True)
        data = build_data(para, dist_info, 0)      # every mode a run (or its resume) uses
        reseed(para['seed'])              # identical model init on every rank
        model = STCNModel(para, dist_info)
        start_it, resume = 0, {}
        if para['load_model']:
            if para['load_network']:
                print_main(dist_info, f'--load_model given: --load_network '
                                      f'{para["load_network"]} is not used')
            start_it = model.load_model(para['load_model'])
            resume = model.resume_extra
            if start_it >= para['iterations']:
                raise UserError(f'{para["load_model"]}: the checkpoint is at iteration '
                                f'{start_it}, not below --iterations {para["iterations"]}: '
                                'nothing to train (raise -i)')
        elif para['load_network']:
            model.load_network(para['load_network'])

        # ---- the run folder
        date = broadcast_object(datetime.datetime.now().strftime('%b%d_%H.%M.%S'), dist_info)
        run_name = f'{date}_{para["id"]}'
        run_dir = os.path.join(para['save_root'], run_name)
        para['run_dir'] = run_dir
        para['world_size'] = dist_info.world_size
        if dist_info.is_main:
            os.makedirs(run_dir, exist_ok=True)
            print(f'hyperparameters:\n{para}', flush=True)
            text = para.to_json()
            atomic_write(os.path.join(run_dir, 'hyperparameters.json'),
                         lambda tmp: open(tmp, 'w').write(text))
        if para['load_model']:
            print_main(dist_info, f'resumed {para["load_model"]} at iteration {start_it} '
                                  f'(lr {model.current_lr():.3g})')
        elif para['load_network']:
            print_main(dist_info, f'loaded network {para["load_network"]}')
        logger = TensorboardLogger(run_dir, enabled=dist_info.is_main)
        model.logger = logger
        model.save_path = os.path.join(run_dir, run_name)
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
            save(model, dist_info, it, state)
        barrier(dist_info)
        if para['debug']:
            digest = weights_digest(model.net)
            print(f'rank {dist_info.rank} weights sha256 {digest}', flush=True)
            atomic_write(os.path.join(run_dir, f'rank{dist_info.rank}_weights.sha256'),
                         lambda tmp: open(tmp, 'w').write(digest + '\n'))
        logger.close()
    finally:
        cleanup(dist_info)
    return 0


def remove_unused_run(run_dir):
    """Remove a run folder that failed before saving anything (hyperparameters and
    TensorBoard events only): a failed start leaves nothing behind."""
    import shutil
    try:
        names = os.listdir(run_dir)
    except OSError:
        return
    if all(n == 'hyperparameters.json' or n.startswith('events.out.tfevents') for n in names):
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


def save(model, dist_info, it, loop_state, weights=True):
    """Weights (unless weights=False) and the resume checkpoint with every rank's RNG states
    and the loop position. A collective when distributed: every rank calls it."""
    states = all_gather_objects(rng_state(dist_info.device), dist_info)
    model.save(it, extra={'loop': loop_state, 'rng': states}, weights=weights)
    model.saves += 1


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
    model.start_timer(it)
    while it < total:
        mode = data_mode(para, it)
        d = data[mode]
        model.bank = d.mix.bank
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
                    try:
                        batch = next(batches)
                    except UserError:
                        if not dist_info.distributed and it > first_it:
                            save(model, dist_info, it, state, weights=False)   # then report
                        raise
                    model.do_pass(batch, it)
                    it, pos = it + 1, pos + 1
                    state['pos'] = pos
                    if it % para['save_every'] == 0:
                        save(model, dist_info, it, state)
                    if it >= total:
                        break
                    if para['stop_after_it'] == it:              # tests: a real signal
                        os.kill(os.getpid(), signal.SIGINT)
                    signum = stop.agreed(dist_info)
                    if signum:
                        save(model, dist_info, it, state, weights=False)
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


def print_main(dist_info, text):
    if dist_info.is_main:
        print(text, flush=True)


if __name__ == '__main__':
    try:
        run_main(main)
    except SystemExit as e:
        # a stop (130/143) ends without the interpreter's teardown: that resets the signal
        # handlers to the defaults, and torchrun's SIGTERM to the other ranks would then
        # kill a rank whose stop is saved (-15 instead of the stop's status)
        if e.code in (128 + signal.SIGINT, 128 + signal.SIGTERM):
            exit_now(e.code)
        raise
