"""The trainer: student STCN (+ EMA teacher), the triplet forward, one training step, saving.

Shapes: B batch, 3 frames per sample, H = W = crop size, K objects (2, or 1 in stage 0).
A batch (from dataset/vos_dataset.py or dataset/static_dataset.py, default-collated):
  rgb [B, 3, 3, H, W] normalised; gt, sec_gt [B, 3, 1, H, W]; cls_gt long [B, 3, H, W]
  (0 bg, 1 target, 2 second, -1 ignored); selector [B, 2]; labeled bool [B, 3];
  info {'name': [B], 'frames': 3 x [B], 'target_id': [B], 'second_id': [B]}.

One step (STCNModel.do_pass) is forward -> targets -> loss -> step in the iteration's data
mode (dataset/data_mode.py, decided by train.py): the targets and the loss are computed in
model/losses.py, the phase-2 bank write-back in phase2/bank_writer.py (given to the trainer).

The networks are always in eval() mode (frozen batch norm); only the student is trained. DDP
wraps the student's triplet forward (model/triplet.py), one forward per iteration. Pseudo labels
(docs/method.md, "Pseudo labels") come from the teacher's forward of the same triplet
(--use_teacher, once it exists); else from the student's own prediction, detached from its
training forward: the same numbers a separate no_grad forward would give, one forward
cheaper. The teacher forward runs only when pseudo labels are needed.
"""
import copy
import math
import os
import time
from typing import NamedTuple

import torch
from torch.nn.parallel import DistributedDataParallel

from dataset.data_mode import BASE, PHASE2, SEMI
from dataset.range_transform import inv_im_trans
from model.checkpoint import load_network, read_checkpoint
from model.losses import LossComputer, labeled_targets, refresh_targets, semi_targets
from model.network import STCN
from model.precision import training_amp
from model.training_grid import training_grid
from model.triplet import TripletModule, triplet_forward
from util.distributed import average_over_ranks
from util.errors import UserError
from util.files import save_checkpoint
from util.logger import ScalarAverager
from util.resume import check_resume


# ----------------------------------------------------------------------------- EMA teacher

def ema_decay(it, alpha):
    """a = min(1 - 1/(it+1), alpha) for the update after iteration `it` (0-based)."""
    return min(1.0 - 1.0 / (it + 1), alpha)


@torch.no_grad()
def ema_update(teacher, student, decay):
    """teacher <- decay * teacher + (1 - decay) * student (parameters); buffers copied."""
    s_params = dict(student.named_parameters())
    for name, p in teacher.named_parameters():
        p.mul_(decay).add_(s_params[name].detach().to(p.dtype), alpha=1.0 - decay)
    s_bufs = dict(student.named_buffers())
    for name, b in teacher.named_buffers():
        b.copy_(s_bufs[name])


def make_teacher(student):
    """A frozen copy of the student (eval mode, no gradients)."""
    teacher = copy.deepcopy(student).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


# ----------------------------------------------------------------------------- the trainer

class Inputs(NamedTuple):
    """One batch on the device."""
    rgb: torch.Tensor              # [B, 3, 3, H, W]
    gt: torch.Tensor               # [B, 3, 1, H, W] target object
    sec_gt: torch.Tensor           # [B, 3, 1, H, W] second object
    cls_gt: torch.Tensor           # long [B, 3, H, W]
    selector: torch.Tensor         # [B, 2]
    labeled: torch.Tensor          # bool [B, 3]
    has_second: torch.Tensor       # bool [B]


LOSS_PATIENCE = 10      # non-finite losses in a row that fp16's gradient scaler may skip


class STCNModel:
    """Student (+ teacher), optimiser, scheduler, AMP scaler, logging and checkpoints.

    para: util.hyper_para.HyperParameters (or a dict with the same keys); dist: DistInfo.
    logger: util.logger.TensorboardLogger or None; save_path: '<run_dir>/<date>_<id>' prefix
    (None: no saving); bank_writer: phase2.bank_writer.BankWriter of the phase-2 bank (None:
    no write-back).
    """

    def __init__(self, para, dist, logger=None, save_path=None, bank_writer=None):
        self.para = para
        self.dist = dist
        self.device = dist.device
        self.logger = logger
        self.save_path = save_path
        self.bank_writer = bank_writer
        self.single_object = para['stage'] == 0
        self.net = STCN(single_object=self.single_object).to(self.device).eval()
        self.module = TripletModule(self.net)
        self.ddp = None
        self.teacher = None
        self.use_teacher = bool(para['use_teacher'])
        dtype, scaled = training_amp(self.device, para.get('cpu_bf16', False)) \
            if para['amp'] else (None, False)
        self.amp_dtype = dtype                 # autocast dtype, None = fp32
        self.amp = dtype is not None
        if para.get('cpu_bf16', False) and para['amp'] and self.device.type == 'cpu' \
                and not self.amp and dist.is_main:
            print('note: --cpu_bf16: this CPU has no native bf16 (no avx512_bf16 / amx_bf16 '
                  'flag), training in fp32', flush=True)
        self.optimizer = torch.optim.Adam([p for p in self.net.parameters() if p.requires_grad],
                                          lr=para['lr'], weight_decay=1e-7)
        self.scheduler = torch.optim.lr_scheduler.MultiStepLR(self.optimizer, para['steps'],
                                                              para['gamma'])
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=scaled)
        self.losses = LossComputer(para)
        self.averager = ScalarAverager()
        self.resume_extra = {}
        self.saves = 0                         # checkpoints written by this run (train.py)
        self.teacher_forward_calls = 0
        self._last_log = (None, None)          # (time, it) of the previous log point
        self._bad_steps = 0                    # steps in a row with a non-finite loss

    # -- setup
    def wrap(self):
        """DDP around the student when world > 1 (after any weights are loaded)."""
        if self.dist.distributed and self.ddp is None:
            ids = [self.device.index] if self.device.type == 'cuda' else None
            # frozen BN: buffers never change, so DDP's buffer sync is a no-op copy
            self.ddp = DistributedDataParallel(self.module, device_ids=ids)
        return self

    @property
    def forward_module(self):
        return self.ddp if self.ddp is not None else self.module

    def load_network(self, path):
        """Weights only (stage-0 4-channel checkpoints mapped, for training)."""
        load_network(self.net, path, for_training=True)
        self.net.eval()

    def load_model(self, path, iterations=None):
        """Resume: network, teacher, optimiser, scheduler, scaler; returns the iteration.
        iterations: the run's --iterations; with it the checkpoint's iteration, scheduler and
        optimiser state are checked first (util.resume.check_resume).

        What train.py saved beside them (loop position, RNG states) is left in
        self.resume_extra = {'loop': ..., 'rng': ...} (None each for older checkpoints).
        """
        obj = read_checkpoint(path)
        if not isinstance(obj, dict) or 'network' not in obj or 'it' not in obj:
            raise UserError(f'{path}: not a resume checkpoint (*_checkpoint.pth with it, network, '
                            'optimizer, ...); use --load_network for plain weights')
        if iterations is not None:
            check_resume(obj, path, self.optimizer.param_groups[0]['params'], iterations)
        load_network(self.net, obj, for_training=True)
        if obj.get('teacher') is not None:
            self.teacher = make_teacher(self.net)
            load_network(self.teacher, obj['teacher'], for_training=True)
        try:
            if obj.get('optimizer') is not None:
                self.optimizer.load_state_dict(obj['optimizer'])
            if obj.get('scheduler') is not None:
                self.scheduler.load_state_dict(obj['scheduler'])
            if obj.get('scaler') is not None and self.scaler.is_enabled():
                self.scaler.load_state_dict(obj['scaler'])
        except (ValueError, KeyError) as e:
            raise UserError(f'{path}: optimiser/scheduler state does not fit this run ({e})') from e
        self.resume_extra = {'loop': obj.get('loop'), 'rng': obj.get('rng')}
        return int(obj['it'])

    # -- helpers
    def autocast(self):
        """The autocast region of the forwards (a disabled one in fp32)."""
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype,
                              enabled=self.amp)

    def current_lr(self):
        return self.optimizer.param_groups[0]['lr']

    def _predictor(self):
        """Network whose prediction makes pseudo labels (None = reuse the student's output)."""
        return self.teacher if (self.use_teacher and self.teacher is not None) else None

    @torch.no_grad()
    def _reference_logits(self, out, rgb, gt0, sec0, selector):
        """Logits of frames 1, 2 for pseudo labels: teacher forward, or the detached student's."""
        if self._predictor() is None:
            return out['logits_1'].detach(), out['logits_2'].detach()
        self.teacher_forward_calls += 1
        t_out = self.label_forward(rgb, gt0, sec0, selector)
        return t_out['logits_1'], t_out['logits_2']

    @torch.no_grad()
    def label_forward(self, rgb, first_gt, first_sec_gt, selector):
        """triplet_forward of the network that makes pseudo labels (teacher, else student),
        without gradients: the bank write-back re-predicts with it."""
        net = self._predictor() or self.net
        with self.autocast():
            return triplet_forward(net, rgb, first_gt, first_sec_gt, selector)

    # -- one iteration
    def do_pass(self, data, it, mode, timing=None):
        """One training iteration in data mode `mode` (dataset.data_mode: BASE, SEMI, PHASE2):
        forward -> targets -> loss -> step, then the phase-2 bank write-back and logging.

        timing: the loop's 'time/...' statistics of this batch (train.py), logged with the
        step's. Returns the step's statistics."""
        x = self._inputs(data)
        stats = dict(timing or {})
        with self.autocast():
            out = self.forward_module(x.rgb, x.gt[:, 0], x.sec_gt[:, 0], x.selector)
        cls_gt, wanted, frozen = self._targets(x, out, it, mode, stats)    # [B, 3, H, W]
        total, loss_stats = self.losses.compute(out, cls_gt, x.has_second, it)
        stats.update(loss_stats)
        self._check_loss(loss_stats['loss/total'], it)
        self._step(total, it)
        if self._writes_bank(it, mode):
            # collective (gathers requests): every rank calls it, with or without requests
            stats['bank/writes'] = self.bank_writer.update(data, wanted, frozen,
                                                           self.label_forward)
        self._record(stats, it, x, out, cls_gt, data)
        return stats

    def _inputs(self, data):
        """The batch's tensors on the device; the optional keys filled in."""
        dev = self.device
        rgb = data['rgb'].to(dev, non_blocking=True)                    # [B, 3, 3, H, W]
        b = rgb.shape[0]
        gt = data['gt'].to(dev, non_blocking=True)                      # [B, 3, 1, H, W]
        sec_gt = data['sec_gt'].to(dev) if 'sec_gt' in data else torch.zeros_like(gt)
        selector = (data['selector'].to(dev).float() if 'selector' in data
                    else torch.ones(b, 2, device=dev))                  # [B, 2]
        labeled = (data['labeled'].to(dev).bool() if 'labeled' in data
                   else torch.ones(b, 3, dtype=torch.bool, device=dev))  # [B, 3]
        return Inputs(rgb=rgb, gt=gt, sec_gt=sec_gt,
                      cls_gt=data['cls_gt'].to(dev).long(),             # [B, 3, H, W]
                      selector=selector, labeled=labeled,
                      has_second=(selector[:, 1] > 0.5) & (not self.single_object))   # [B]

    def _targets(self, x, out, it, mode, stats):
        """The class maps the loss is computed against, [B, 3, H, W], and for the bank
        write-back: wanted [B, 2] (frames 1, 2 asking for a rewrite) and frozen [B, 2] (frames
        the refresh leaves alone, --phase2_keep_true_labels). Pseudo-label shares go to stats.
        """
        para = self.para
        frozen = (x.labeled[:, 1:] if para.get('phase2_keep_true_labels')
                  else torch.zeros_like(x.labeled[:, 1:]))
        wanted = torch.zeros_like(frozen)
        cls_gt = x.cls_gt
        if mode == BASE:
            cls_gt = labeled_targets(cls_gt, x.labeled)
        elif mode == SEMI and not bool(x.labeled[:, 1:].all()):
            ref = self._reference_logits(out, x.rgb, x.gt[:, 0], x.sec_gt[:, 0], x.selector)
            cls_gt, s = semi_targets(cls_gt, x.labeled, ref, para['semi_thres_upper'],
                                     x.has_second)
            stats.update(s)
        elif self._refreshes(it, mode) and not bool(frozen.all()):
            ref = self._reference_logits(out, x.rgb, x.gt[:, 0], x.sec_gt[:, 0], x.selector)
            cls_gt, wanted, s = refresh_targets(cls_gt, frozen, ref, para['phase2_thres'],
                                                x.has_second)
            stats.update(s)
        return cls_gt, wanted, frozen

    def _refreshes(self, it, mode):
        """Phase 2 refreshes the bank labels from --phase2_start_update on."""
        return mode == PHASE2 and it >= self.para['phase2_start_update']

    def _writes_bank(self, it, mode):
        """Phase 2 writes the refreshed labels back into the bank from --update_pseudo_bank on."""
        return (self._refreshes(it, mode) and 0 <= self.para['update_pseudo_bank'] <= it
                and self.bank_writer is not None)

    def _step(self, total, it):
        """Backward (scaled under fp16), optimiser and scheduler step, teacher EMA."""
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self._update_teacher(it)

    def _diverged(self, it, why):
        where = os.path.dirname(self.save_path) if self.save_path else 'training'
        return UserError(f'{where}: training diverged at iteration {it + 1}: {why}; stopped '
                         'without saving (the checkpoints written before are kept, all '
                         'finite); lower --lr or resume from an earlier checkpoint')

    def _check_loss(self, loss, it):
        """The step's loss (a float the loss computation already fetched): non-finite stops
        the run before the step spoils the weights. Under fp16 with a gradient scaler, a step
        with inf/NaN is skipped by the scaler by design: only LOSS_PATIENCE such steps in a row
        stop it. Distributed ranks see different losses: there the weights decide (checked
        alike on every rank at the log interval and before saving)."""
        if math.isfinite(loss):
            self._bad_steps = 0
            return
        self._bad_steps += 1
        if self.dist.distributed or (self.scaler.is_enabled() and
                                     self._bad_steps < LOSS_PATIENCE):
            return
        raise self._diverged(it, f'the loss is {loss}' + (
            f' for {self._bad_steps} steps in a row' if self._bad_steps > 1 else ''))

    def check_weights(self, it):
        """UserError (training diverged) when a student or teacher weight is NaN or Inf; one
        device sync, at the log interval and before saving."""
        nets = [('', self.net)] + ([('teacher ', self.teacher)] if self.teacher is not None
                                   else [])
        params = [(f'{who}{k}', p) for who, n in nets for k, p in n.named_parameters()]
        if bool(torch.stack([torch.isfinite(p).all() for _, p in params]).all()):
            return
        name = next(k for k, p in params if not bool(torch.isfinite(p).all()))
        raise self._diverged(it - 1, f'weight {name} holds NaN or Inf')

    def _record(self, stats, it, x, out, cls_gt, data):
        """Statistics into the averager (logged every log_every), the image grid."""
        self.averager.add(stats)
        done = it + 1
        if done % self.para['log_every'] == 0:
            self.check_weights(done)
            self._log(done)
        if self.logger is not None and self.dist.is_main and \
                done % self.para['image_every'] == 0:
            pred = torch.stack([out['logits_1'].argmax(1), out['logits_2'].argmax(1)], 1)
            grid = training_grid(inv_im_trans(x.rgb.detach().float()), data['cls_gt'], cls_gt,
                                 pred)
            self.logger.log_image('train/triplets', grid, done)

    def _update_teacher(self, it):
        if not self.use_teacher:
            return
        if self.teacher is None:
            self.teacher = make_teacher(self.net)         # after the first optimiser step
        else:
            ema_update(self.teacher, self.net, ema_decay(it, self.para['ema_alpha']))

    def _log(self, done):
        now = time.time()
        means = average_over_ranks(self.averager.means(), self.dist)   # collective
        self.averager.reset()
        last_t, last_it = self._last_log
        if last_t is not None and done > last_it:
            means['time/sec_per_it'] = (now - last_t) / (done - last_it)
            if 'time/data_wait' in means:
                means['time/data_share'] = means['time/data_wait'] / means['time/sec_per_it']
        if means.get('time/sample_load', 0) > 0:
            means['data/samples_per_s_per_worker'] = 1.0 / means['time/sample_load']
        self._last_log = (now, done)
        means['lr'] = self.current_lr()
        if self.dist.is_main:
            if self.logger is not None:
                self.logger.log_scalars(means, done)
            shown = ', '.join(f'{k} {v:.4g}' for k, v in sorted(means.items()))
            print(f'it {done}/{self.para["iterations"]}: {shown}', flush=True)

    def start_timer(self, it):
        self._last_log = (time.time(), it)

    # -- saving
    def save(self, it, extra=None, weights=True):
        """Student / teacher weights at `it` (unless weights=False) and the resume checkpoint
        (it, network, teacher, optimizer, scheduler, scaler, + `extra`); main process only.
        Every file is written atomically: a kill during saving leaves the previous one."""
        self.check_weights(it)             # every rank: the weights are the same on all
        if self.save_path is None or not self.dist.is_main:
            return
        os.makedirs(os.path.dirname(self.save_path), exist_ok=True)
        net_state = self.net.state_dict()
        tea_state = self.teacher.state_dict() if self.teacher is not None else None
        if weights:
            save_checkpoint(net_state, f'{self.save_path}_{it}.pth')
            if tea_state is not None:
                save_checkpoint(tea_state, f'{self.save_path}_{it}_tea.pth')
        ck = {'it': it, 'network': net_state, 'teacher': tea_state,
              'optimizer': self.optimizer.state_dict(),
              'scheduler': self.scheduler.state_dict(),
              'scaler': self.scaler.state_dict() if self.scaler.is_enabled() else None}
        ck.update(extra or {})
        save_checkpoint(ck, f'{self.save_path}_checkpoint.pth')
        if weights:
            print(f'saved {self.save_path}_{it}.pth' + (' (+ teacher)' if tea_state else '')
                  + ' and the resume checkpoint', flush=True)
        else:
            print(f'saved the resume checkpoint {self.save_path}_checkpoint.pth at iteration '
                  f'{it}', flush=True)
