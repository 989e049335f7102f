"""The training data of a run: the datasets of each stage and data mode, the frame-skip
curriculum, and one sampler + loader per data mode (docs/method.md, "Training").

Stage 0 the static image sets, stage 1 BL30K, stages 2/3 DAVIS 2017 train x5 + YouTube-VOS
train (two-shot when --davis_data / --yv_data name split JSONs; phase 2 from --phase2_train
on, for each data set that has a bank: --phase2_davis / --phase2_yv). The maximum frame skip
follows STCN's curriculum (5, then 10, 15, 20, 25 at 10/20/30/40% of the epochs and 5 again
at 90%; 80% for BL30K); YouTube uses skip // 5.
"""
import os

import torch
from torch.utils.data import ConcatDataset, DataLoader

from dataset.data_mode import PHASE2, SEMI, modes_reached
from dataset.reseed import WorkerInit
from dataset.sampling import EpochSampler, SeededSamples
from dataset.static_dataset import StaticTransformDataset
from dataset.vos_dataset import VOSDataset
from util.errors import UserError
from util.io import read_list, require_dir
from util.layout import (davis_2017_dir, davis_dirs, davis_imageset, davis_trainval, generic_dirs,
                          youtube_dirs)
from util.resume import QuietWorkerInit
from util.two_shot_split import load_split

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


def bank_path(para, bank):
    """A pseudo-label bank flag (--phase2_yv / --phase2_davis), under --phase2_root if given."""
    return os.path.join(para['phase2_root'], bank) if para['phase2_root'] else bank


def data_roots(para):
    """[(what, path)]: the data roots the run reads (its stage's data sets, phase-2 banks)."""
    if para['stage'] == 0:
        return [('static image root (--static_root)', para['static_root'])]
    if para['stage'] == 1:
        return [('BL30K root (--bl_root)', para['bl_root'])]
    roots = [('DAVIS root (--davis_root)', para['davis_root']),
             ('YouTube-VOS root (--yv_root)', para['yv_root'])]
    if para['phase2_train'] >= 0:
        roots += [(f'pseudo-label bank (--{flag})', bank_path(para, para[flag]))
                  for flag in ('phase2_davis', 'phase2_yv') if para[flag]]
    return roots


class DataMix:
    """The datasets of one stage / mode; max_jump of the video sets follows the curriculum."""

    def __init__(self, para, mode):
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
            ds = VOSDataset(*generic_dirs(root), START_SKIP, is_bl=True, crop_size=crop)
            self.videos.append((ds, 1))
            self.dataset = ds
            return
        semi = mode == SEMI
        davis = davis_trainval(davis_2017_dir(para['davis_root']))
        d_im, d_gt = davis_dirs(davis)
        davis_sets = dict(
            im=d_im, gt=d_gt,
            subset=read_list(davis_imageset(davis, 2017, 'train'), 'image-set file',
                             folder=d_im),
            split=para['davis_data'], bank=para['phase2_davis'], divisor=1, repeat=5)
        y_im, y_gt = youtube_dirs(para['yv_root'], 'train_480p')
        yv_sets = dict(im=y_im, gt=y_gt, subset=None, split=para['yv_data'],
                       bank=para['phase2_yv'], divisor=5, repeat=1)
        parts = []
        for d in (davis_sets, yv_sets):
            require_dir(d['im'], 'frame folder')
            split = load_split(d['split'], max_frames=10 ** 6) if d['split'] else None
            if mode == PHASE2 and d['bank']:
                bank = bank_path(para, d['bank'])
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


class ModeData:
    """DataMix + sampler + loader of one data mode."""

    def __init__(self, para, mode, dist_info):
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
            worker_init_fn=QuietWorkerInit(WorkerInit(para['seed'], dist_info.rank)),
            generator=torch.Generator().manual_seed(para['seed'] + dist_info.rank))


def build_data(para, dist_info, start_it):
    """{mode: ModeData} for every mode the run reaches: all data is checked before training."""
    return {m: ModeData(para, m, dist_info) for m in modes_reached(para, start_it)}

