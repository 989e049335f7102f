"""The phase-2 bank write-back (--update_pseudo_bank): refreshed pseudo labels go back into
the bank's PNGs during training (docs/method.md, "Pseudo labels").

A sample whose refresh asks for it (model.losses.bank_trigger) has frames 1-2 re-predicted
at stored resolution and written back into the bank, by the one rank that owns the video
(zlib.crc32(video) % world_size). The bank entries come from the phase-2 training data
(dataset.training_data.DataMix.bank); the network forward from the trainer
(model.trainer.STCNModel.label_forward).
"""
import os
import zlib

import numpy as np
import torch

from dataset.range_transform import im_normalization
from model.losses import class_probs, pseudo_labels
from util.distributed import all_gather_objects
from util.image_io import get_palette, read_frame, read_mask, write_mask
from util.layout import FRAME_EXTS, JPEG_EXTS
from util.tensor_util import pad_divide_by, unpad


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


def _stem(name):
    base, ext = os.path.splitext(name)
    return base if ext.lower() in FRAME_EXTS else name


class BankWriter:
    """Writes refreshed labels back into the pseudo-label bank.

    bank: {video: {'im_root', 'gt_root', 'bank_root', 'labeled': set of frame stems}};
    thres: --phase2_thres; keep_true: --phase2_keep_true_labels (truly labeled frames are
    never written); dist: DistInfo (the device, the owner of each video).
    """

    def __init__(self, bank, thres, keep_true, dist):
        self.bank = bank or {}
        self.thres = thres
        self.keep_true = bool(keep_true)
        self.dist = dist
        self.device = dist.device

    def update(self, data, wanted, frozen, forward):
        """Write refreshed labels back into the bank; returns the PNGs this rank wrote.

        wanted [B, 2] bool: frame 1 / 2 of a sample asks for a rewrite (bank_trigger); frozen
        [B, 2] bool: frames the refresh left alone (--phase2_keep_true_labels), never written.
        A sample with a request has its frames 1-2 rewritten (but for frozen or, with the flag,
        truly labeled ones). Requests of all ranks are gathered; the rank owning a video
        (crc32 % world) re-predicts and writes it. forward: as rewrite_frames. A collective:
        every rank calls it, with or without requests.
        """
        requests = []
        info = data.get('info')
        if info is not None:
            for j in range(wanted.shape[0]):
                if not bool(wanted[j].any()):
                    continue
                video, frames, tid, sid = sample_info(info, j)
                if video not in self.bank or tid == 0:       # no target object: nothing to fix
                    continue
                pos = tuple(f for f in (1, 2) if not bool(frozen[j, f - 1]) and not (
                    self.keep_true and _stem(frames[f]) in self.bank[video]['labeled']))
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
            written += self.rewrite_frames(forward, video, list(frames), tid, sid, pos)
        return written

    def paths(self, video, name):
        """(frame image, bank mask to write, mask to read: the bank's, else the true label)."""
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
    def rewrite_frames(self, forward, video, frames, tid, sid, positions):
        """Re-predict frames `positions` of the triplet at stored resolution; write changes.

        Frame 0's bank (or true) mask gives the reference masks of object ids tid / sid.
        Pixels owned by other objects are never changed; where the prediction is not
        confident (< thres) the old label stays. forward(rgb [1, 3, 3, H, W], gt0, sec0
        [1, 1, H, W], selector [1, 2]) -> triplet_forward's outputs: the network that makes
        the pseudo labels (STCNModel.label_forward). Returns the number of PNGs written.
        """
        paths = [self.paths(video, f) for f in frames]
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
        out = forward(rgb, gt0, sec0, selector)
        written = 0
        for f in positions:
            logits = unpad(out[f'logits_{f}'].float(), pad)                 # [1, K+1, H, W]
            bg, pt, ps = class_probs(logits)
            pl = pseudo_labels(bg, pt, ps, self.thres, sid > 0)[0].cpu().numpy()
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
