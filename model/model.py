"""The trainer: student STCN (+ EMA teacher), triplet forward, pseudo labels, losses, saving.

Shapes: B batch, 3 frames per sample, H = W = crop size, K objects (2, or 1 in stage 0).
A batch (from dataset/vos_dataset.py or dataset/static_dataset.py, default-collated):
  rgb [B, 3, 3, H, W] normalised; gt, sec_gt [B, 3, 1, H, W]; cls_gt long [B, 3, H, W]
  (0 bg, 1 target, 2 second, -1 ignored); selector [B, 2]; labeled bool [B, 3];
  info {'name': [B], 'frames': 3 x [B], 'target_id': [B], 'second_id': [B]}.

The networks are always in eval() mode (frozen batch norm); only the student is trained. The
student is wrapped (TripletModule) so that DDP sees one forward per iteration.

Pseudo labels (docs/method.md, "Pseudo labels"):
  phase 1 (--semi, it > end_warm, frames not labeled): the teacher's prediction of the same
    triplet, thresholded with --semi_thres_upper, -1 elsewhere. Without a teacher (no
    --use_teacher, or before the first step) the student's own prediction is used, detached
    from its training forward: the same numbers a separate no_grad forward would give, one
    forward cheaper. The teacher forward runs only when pseudo labels are needed.
  phase 2 (it >= phase2_start_update, frames 1-2 of every sample, truly labeled ones too;
    with --phase2_keep_true_labels those stay untouched): the bank labels are overwritten where
    the teacher's (else student's) prediction is >= --phase2_thres and kept elsewhere. With
    --update_pseudo_bank IT (it >= IT), a sample whose refresh of frame 1 or 2 changed the size
    of the target region while the confident target is not contained in the old region
    (bank_trigger) has frames 1-2 re-predicted at stored resolution and written back into the
    bank (by the one rank that owns the video: zlib.crc32(video) % world_size).
"""
import copy
import os
import time
import zlib

import numpy as np
import torch
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel

from dataset.range_transform import im_normalization, inv_im_trans
from model.checkpoint import load_network, read_checkpoint
from model.losses import IGNORE, BootstrappedCE, compute_tensor_iu, pseudo_labels
from model.network import STCN
from model.training_grid import training_grid
import util.device
from util.distributed import all_gather_objects, average_over_ranks
from util.errors import UserError
from util.io import get_palette, read_frame, read_mask, save_checkpoint, write_mask
from util.layout import FRAME_EXTS, JPEG_EXTS
from util.logger import ScalarAverager
from util.tensor_util import pad_divide_by, unpad


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


# ----------------------------------------------------------------------------- triplet forward

def triplet_forward(net, rgb, first_gt, first_sec_gt=None, selector=None):
    """Triplet forward of the training STCN (docs/method.md, "Training").

    rgb [B, 3, 3, H, W]; first_gt / first_sec_gt [B, 1, H, W] (frame 0 masks); selector [B, 2].
    Keys of all 3 frames; values of frame 0 (each object with its mask and the other's);
    segment frame 1 from frame 0; values of frame 1 from its predicted masks; segment frame 2
    from frames 0 and 1. Returns {'logits_1', 'logits_2': [B, K+1, H, W],
    'prob_1', 'prob_2': [B, K, H, W] object probabilities}.
    """
    k16, f16_thin, f16, f8, f4 = net.encode_key(rgb)

    def seg(t, mk, mv):
        return net.segment(k16[:, :, t], f16_thin[:, t], f8[:, t], f4[:, t], mk, mv, selector)

    if net.single_object:
        ref_v = net.encode_value(rgb[:, 0], f16[:, 0], first_gt)                 # [B, 512, 1, h, w]
        logits1, prob1 = seg(1, k16[:, :, 0:1], ref_v)
        prev_v = net.encode_value(rgb[:, 1], f16[:, 1], prob1[:, 0:1])
        logits2, prob2 = seg(2, k16[:, :, 0:2], torch.cat([ref_v, prev_v], 2))
    else:
        if first_sec_gt is None:
            first_sec_gt = torch.zeros_like(first_gt)
        ref_v = torch.stack([net.encode_value(rgb[:, 0], f16[:, 0], first_gt, first_sec_gt),
                             net.encode_value(rgb[:, 0], f16[:, 0], first_sec_gt, first_gt)],
                            1)                                   # [B, 2, 512, 1, h, w]
        logits1, prob1 = seg(1, k16[:, :, 0:1], ref_v)
        p_t, p_s = prob1[:, 0:1], prob1[:, 1:2]
        prev_v = torch.stack([net.encode_value(rgb[:, 1], f16[:, 1], p_t, p_s),
                              net.encode_value(rgb[:, 1], f16[:, 1], p_s, p_t)], 1)
        logits2, prob2 = seg(2, k16[:, :, 0:2], torch.cat([ref_v, prev_v], 3))
    return {'logits_1': logits1, 'logits_2': logits2, 'prob_1': prob1, 'prob_2': prob2}


class TripletModule(nn.Module):
    """What DDP wraps: one forward = one triplet (so gradient sync happens once)."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, rgb, first_gt, first_sec_gt, selector):
        return triplet_forward(self.net, rgb, first_gt, first_sec_gt, selector)


def class_probs(logits):
    """[B, K+1, H, W] logits -> (bg, target, second or None) probabilities, each [B, H, W]."""
    prob = torch.softmax(logits.float(), dim=1)
    return prob[:, 0], prob[:, 1], (prob[:, 2] if prob.shape[1] > 2 else None)


def sample_info(info, j):
    """(video, [3 frame names], target_id, second_id) of sample j of a collated 'info'."""
    if isinstance(info, (list, tuple)):          # not collated: a list of per-sample dicts
        d = info[j]
        return d['name'], list(d['frames']), int(d['target_id']), int(d.get('second_id', 0))
    frames = info['frames']
    if frames and isinstance(frames[0], (list, tuple)):
        names = [frames[t][j] for t in range(len(frames))]          # collated: 3 x [B]
    else:
        names = list(frames)
    sid = info.get('second_id')
    return (info['name'][j], names, int(info['target_id'][j]),
            int(sid[j]) if sid is not None else 0)


def bank_trigger(old, new, p_target, p_second, thres, has_second):
    """[B] bool: does the refresh of one frame ask for a bank rewrite of its sample?

    old / new [B, H, W] class maps before / after the refresh; p_target, p_second [B, H, W]
    class probabilities (p_second None for one object); has_second [B] bool. The old target
    region is taken after the second object's confident pixels are set (the order the labels
    are refreshed in); the request is: its size changed and some confident target pixel lies
    outside it.
    """
    if p_second is not None:
        old = torch.where((p_second >= thres) & has_second[:, None, None], 2, old)
    old_t = old == 1
    grew = ((p_target >= thres) & ~old_t).flatten(1).any(1)
    changed = old_t.flatten(1).sum(1) != (new == 1).flatten(1).sum(1)
    return changed & grew


def _stem(name):
    base, ext = os.path.splitext(name)
    return base if ext.lower() in FRAME_EXTS else name


# ----------------------------------------------------------------------------- the trainer

def training_amp(device, cpu_bf16=False):
    """(autocast dtype or None, gradient scaler on) of a training run with mixed precision on
    (no --no_amp): on CUDA fp16 autocast and a gradient scaler, as the original; on a CPU
    that computes bf16 natively and only with --cpu_bf16, bf16 autocast without a scaler
    (bf16 has fp32's exponent range); else fp32."""
    if device.type == 'cuda':
        return torch.float16, True
    if device.type == 'cpu' and cpu_bf16 and util.device.cpu_native_bf16():
        return torch.bfloat16, False
    return None, False


class STCNModel:
    """Student (+ teacher), optimiser, scheduler, AMP scaler, logging and checkpoints.

    para: util.hyper_para.HyperParameters (or a dict with the same keys); dist: DistInfo.
    logger: util.logger.TensorboardLogger or None; save_path: '<run_dir>/<date>_<id>' prefix
    (None: no saving); bank: {video: {'im_root', 'gt_root', 'bank_root', 'labeled': set of
    frame stems}} for the phase-2 pseudo-label bank update.
    """

    def __init__(self, para, dist, logger=None, save_path=None, bank=None):
        self.para = para
        self.dist = dist
        self.device = dist.device
        self.logger = logger
        self.save_path = save_path
        self.bank = bank or {}
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
        self.loss_fn = BootstrappedCE(para['bce_start_warm'], para['bce_end_warm'])
        self.averager = ScalarAverager()
        self.resume_extra = {}
        self.saves = 0                         # checkpoints written by this run (train.py)
        self.teacher_forward_calls = 0
        self.bank_writes = 0
        self._last_log = (None, None)          # (time, it) of the previous log point

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

    def load_model(self, path):
        """Resume: network, teacher, optimiser, scheduler, scaler; returns the iteration.

        What train.py saved beside them (loop position, RNG states) is left in
        self.resume_extra = {'loop': ..., 'rng': ...} (None each for older checkpoints).
        """
        obj = read_checkpoint(path)
        if not isinstance(obj, dict) or 'network' not in obj or 'it' not in obj:
            raise UserError(f'{path}: not a resume checkpoint (*_checkpoint.pth with it, network, '
                            'optimizer, ...); use --load_network for plain weights')
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

    def in_phase2(self, it):
        return self.para['phase2_train'] >= 0 and it >= self.para['phase2_train']

    def current_lr(self):
        return self.optimizer.param_groups[0]['lr']

    def _predictor(self):
        """Network whose prediction makes pseudo labels (None = reuse the student's output)."""
        return self.teacher if (self.use_teacher and self.teacher is not None) else None

    @torch.no_grad()
    def _reference_logits(self, out, rgb, gt0, sec0, selector):
        """Logits of frames 1, 2 for pseudo labels: teacher forward, or the detached student's."""
        teacher = self._predictor()
        if teacher is None:
            return out['logits_1'].detach(), out['logits_2'].detach()
        self.teacher_forward_calls += 1
        with self.autocast():
            t_out = triplet_forward(teacher, rgb, gt0, sec0, selector)
        return t_out['logits_1'], t_out['logits_2']

    # -- one iteration
    def do_pass(self, data, it, data_wait=None):
        """Forward, pseudo labels, loss, backward, step, EMA, bank update, logging.

        data_wait: seconds the loop waited for this batch (logged with the samples' own load
        seconds, data['load_seconds'] [B], where present)."""
        para, dev = self.para, self.device
        rgb = data['rgb'].to(dev, non_blocking=True)                    # [B, 3, 3, H, W]
        b = rgb.shape[0]
        gt = data['gt'].to(dev, non_blocking=True)                      # [B, 3, 1, H, W]
        sec_gt = data['sec_gt'].to(dev) if 'sec_gt' in data else torch.zeros_like(gt)
        cls_gt = data['cls_gt'].to(dev).long().clone()                  # [B, 3, H, W]
        selector = (data['selector'].to(dev).float() if 'selector' in data
                    else torch.ones(b, 2, device=dev))
        labeled = (data['labeled'].to(dev).bool() if 'labeled' in data
                   else torch.ones(b, 3, dtype=torch.bool, device=dev))  # [B, 3]
        has_second = (selector[:, 1] > 0.5) & (not self.single_object)  # [B]
        phase2 = self.in_phase2(it)
        semi = bool(para['semi']) and not phase2 and it > para['end_warm']
        unl = ~labeled[:, 1:]                                           # [B, 2] frames 1, 2
        stats = {}
        if data_wait is not None:
            stats['time/data_wait'] = data_wait
        if 'load_seconds' in data:
            stats['time/sample_load'] = float(torch.as_tensor(data['load_seconds']).mean())
        if not (semi or phase2):
            # labeled-only training: a frame without a true label must not teach anything
            cls_gt[:, 1:] = cls_gt[:, 1:].masked_fill(unl[:, :, None, None], IGNORE)

        with self.autocast():
            out = self.forward_module(rgb, gt[:, 0], sec_gt[:, 0], selector)

        refresh = phase2 and it >= para['phase2_start_update']
        # [B, 2] frames 1-2 the refresh leaves alone, and those asking for a bank rewrite
        frozen = labeled[:, 1:] if para.get('phase2_keep_true_labels') else torch.zeros_like(unl)
        wanted = torch.zeros_like(unl)
        if semi and bool(unl.any()):
            ref = self._reference_logits(out, rgb, gt[:, 0], sec_gt[:, 0], selector)
            for f in (1, 2):
                pl = pseudo_labels(*class_probs(ref[f - 1]), para['semi_thres_upper'], has_second)
                cls_gt[:, f] = torch.where(labeled[:, f, None, None], cls_gt[:, f], pl)
            sel = unl[:, :, None, None].expand_as(cls_gt[:, 1:])
            stats['pseudo/coverage'] = float((cls_gt[:, 1:][sel] != IGNORE).float().mean())
        elif refresh and not bool(frozen.all()):
            old_cls = cls_gt.clone()
            confident = torch.zeros_like(cls_gt[:, 1:], dtype=torch.bool)     # [B, 2, H, W]
            ref = self._reference_logits(out, rgb, gt[:, 0], sec_gt[:, 0], selector)
            thres = para['phase2_thres']
            for f in (1, 2):
                bg, p_t, p_s = class_probs(ref[f - 1])
                pl = pseudo_labels(bg, p_t, p_s, thres, has_second)
                confident[:, f - 1] = pl != IGNORE
                keep = frozen[:, f - 1, None, None] | (pl == IGNORE)
                cls_gt[:, f] = torch.where(keep, cls_gt[:, f], pl)
                wanted[:, f - 1] = bank_trigger(old_cls[:, f], cls_gt[:, f], p_t, p_s, thres,
                                                has_second) & ~frozen[:, f - 1]
            sel = (~frozen)[:, :, None, None].expand_as(cls_gt[:, 1:])
            # share of the refreshed frames' pixels the reference is confident about (the
            # bank labels every pixel, so the refreshed map itself has no ignored pixels)
            stats['pseudo/refresh_confident'] = float(confident[sel].float().mean())
            stats['pseudo/refresh_changed'] = float(
                (cls_gt[:, 1:][sel] != old_cls[:, 1:][sel]).float().mean())

        # loss over frames 1 and 2: 3 classes, or 2 for a sample without a second object
        total = 0.0
        for f in (1, 2):
            logits = out[f'logits_{f}'].float()
            loss_f = 0.0
            for j in range(b):
                n_cls = 3 if bool(has_second[j]) else 2
                loss_j, p = self.loss_fn(logits[j:j + 1, :n_cls], cls_gt[j:j + 1, f], it)
                loss_f = loss_f + loss_j / b
            stats[f'loss/ce_{f}'] = float(loss_f.detach())
            total = total + loss_f
        stats['loss/total'] = float(total.detach())
        stats['loss/bootstrap_p'] = p
        stats.update(self._iou_stats(out, cls_gt, has_second))

        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self._update_teacher(it)

        if refresh and 0 <= para['update_pseudo_bank'] <= it:
            # collective (gathers requests): every rank calls it, with or without requests
            stats['bank/writes'] = self.update_bank(data, wanted, frozen)

        self.averager.add(stats)
        done = it + 1
        if done % para['log_every'] == 0:
            self._log(done)
        if self.logger is not None and self.dist.is_main and done % para['image_every'] == 0:
            pred = torch.stack([out['logits_1'].argmax(1), out['logits_2'].argmax(1)], 1)
            grid = training_grid(inv_im_trans(rgb.detach().float()), data['cls_gt'], cls_gt, pred)
            self.logger.log_image('train/triplets', grid, done)
        return stats

    def _iou_stats(self, out, cls_gt, has_second):
        """IoU of the target (and second) object over frames 1, 2, on labeled pixels only."""
        res = {}
        with torch.no_grad():
            for name, k, rows in (('iou/target', 0, slice(None)), ('iou/second', 1, has_second)):
                if self.single_object and k == 1:
                    continue
                inter = union = 0.0
                for f in (1, 2):
                    prob = out[f'prob_{f}'][:, k][rows]
                    gt = cls_gt[:, f][rows]
                    if prob.numel() == 0:
                        continue
                    valid = gt != IGNORE
                    i, u = compute_tensor_iu((prob > 0.5) & valid, (gt == k + 1) & valid)
                    inter, union = inter + float(i), union + float(u)
                if k == 0 or bool(has_second.any()):
                    res[name] = (inter + 1e-6) / (union + 1e-6)
        return res

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

    # -- phase-2 bank update
    def update_bank(self, data, wanted, frozen):
        """Write refreshed labels back into the bank; returns the PNGs this rank wrote.

        wanted [B, 2] bool: frame 1 / 2 of a sample asks for a rewrite (bank_trigger); frozen
        [B, 2] bool: frames the refresh left alone (--phase2_keep_true_labels), never written.
        A sample with a request has its frames 1-2 rewritten (but for frozen or, with the flag,
        truly labeled ones). Requests of all ranks are gathered; the rank owning a video
        (crc32 % world) re-predicts and writes it.
        """
        requests = []
        info = data.get('info')
        keep_true = bool(self.para.get('phase2_keep_true_labels'))
        if info is not None:
            for j in range(wanted.shape[0]):
                if not bool(wanted[j].any()):
                    continue
                video, frames, tid, sid = sample_info(info, j)
                if video not in self.bank or tid == 0:       # no target object: nothing to fix
                    continue
                pos = tuple(f for f in (1, 2) if not bool(frozen[j, f - 1]) and not (
                    keep_true and _stem(frames[f]) in self.bank[video]['labeled']))
                if pos:
                    requests.append((video, tuple(frames), tid, sid, pos))
        gathered = [r for rank_reqs in all_gather_objects(requests, self.dist) for r in rank_reqs]
        written = 0
        seen = set()
        for video, frames, tid, sid, pos in gathered:
            if zlib.crc32(video.encode()) % self.dist.world_size != self.dist.rank:
                continue
            key = (video, frames, tid, sid, pos)
            if key in seen or video not in self.bank:
                continue
            seen.add(key)
            written += self.rewrite_bank_frames(video, list(frames), tid, sid, pos)
        self.bank_writes += written
        return written

    def _bank_paths(self, video, name):
        entry = self.bank[video]
        stem = _stem(name)
        ext = os.path.splitext(name)[1] if os.path.splitext(name)[1].lower() in JPEG_EXTS \
            else '.jpg'
        image = os.path.join(entry['im_root'], video, stem + ext)
        mask = os.path.join(entry['bank_root'], video, stem + '.png')
        if not os.path.isfile(mask) and entry.get('gt_root'):
            gt_mask = os.path.join(entry['gt_root'], video, stem + '.png')
            if os.path.isfile(gt_mask):
                return image, mask, gt_mask
        return image, mask, mask

    @torch.no_grad()
    def rewrite_bank_frames(self, video, frames, tid, sid, positions):
        """Re-predict frames `positions` of the triplet at stored resolution; write changes.

        Frame 0's bank (or true) mask gives the reference masks of object ids tid / sid.
        Pixels owned by other objects are never changed; where the prediction is not
        confident (< phase2_thres) the old label stays. Returns the number of PNGs written.
        """
        paths = [self._bank_paths(video, f) for f in frames]
        imgs = [read_frame(p[0]) for p in paths]
        masks = [read_mask(p[2]) for p in paths]
        shape = imgs[0].shape[:2]
        if any(i.shape[:2] != shape for i in imgs) or any(m.shape != shape for m in masks):
            print(f'warning: {video}: frames/bank masks of different sizes, bank not updated',
                  flush=True)
            return 0
        dev = self.device
        rgb = torch.stack([im_normalization(torch.from_numpy(np.array(i))
                                            .permute(2, 0, 1).float() / 255) for i in imgs])
        rgb, pad = pad_divide_by(rgb[None].to(dev), 16)                    # [1, 3, 3, H', W']
        m0 = torch.from_numpy(masks[0].astype(np.int64)).to(dev)
        gt0, _ = pad_divide_by((m0 == tid).float()[None, None], 16)         # [1, 1, H', W']
        sec0, _ = pad_divide_by(((m0 == sid) & (sid > 0)).float()[None, None], 16)
        selector = torch.tensor([[1.0, 1.0 if sid > 0 else 0.0]], device=dev)
        net = self.teacher if (self.use_teacher and self.teacher is not None) else self.net
        with self.autocast():
            out = triplet_forward(net, rgb, gt0, sec0, selector)
        written = 0
        for f in positions:
            logits = unpad(out[f'logits_{f}'].float(), pad)                 # [1, K+1, H, W]
            bg, pt, ps = class_probs(logits)
            pl = pseudo_labels(bg, pt, ps, self.para['phase2_thres'], sid > 0)[0].cpu().numpy()
            old = masks[f]
            editable = (old == 0) | (old == tid) | ((old == sid) & (sid > 0))
            new = old.copy()
            new[editable & (pl == 0)] = 0
            new[editable & (pl == 1)] = tid
            if sid > 0:
                new[editable & (pl == 2)] = sid
            if np.array_equal(new, old):
                continue
            target = paths[f][1]
            palette = get_palette(paths[f][2]) if os.path.isfile(paths[f][2]) else None
            write_mask(target, new, palette=palette)                        # atomic
            written += 1
        return written

    # -- saving
    def save(self, it, extra=None, weights=True):
        """Student / teacher weights at `it` (unless weights=False) and the resume checkpoint
        (it, network, teacher, optimizer, scheduler, scaler, + `extra`); main process only.
        Every file is written atomically: a kill during saving leaves the previous one."""
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
