"""The training data of a run: the datasets of each stage and data mode, the frame-skip
curriculum, and one sampler + loader per data mode (docs/method.md, "Training").

Stage 0 the static image sets, stage 1 BL30K, stages 2/3 DAVIS 2017 train x5 + YouTube-VOS
train (two-shot when --davis_data / --yv_data name split JSONs; phase 2 from --phase2_train
on, for each data set that has a bank: --phase2_davis / --phase2_yv). A data set read with
full labels trains, as in STCN, on the videos of its subset list (--yv_subset / --davis_subset,
default util/yv_subset.txt / util/davis_subset.txt), otherwise DAVIS on ImageSets/2017/train.txt
and YouTube-VOS on every video of train_480p. The maximum frame skip
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
from util.distributed import print_main
from util.errors import UserError
from util.files import read_list, require_dir
from util.layout import (bank_labels, davis_2017_dir, davis_dirs, davis_imageset,
                          davis_trainval, generic_dirs, list_videos, youtube_dirs)
from util.resume import QuietWorkerInit
from dataset.two_shot_split import load_split

SKIP_VALUES = (10, 15, 20, 25, 5)
SKIP_FRACTIONS = (0.1, 0.2, 0.3, 0.4, 0.9)
SKIP_FRACTIONS_BL = (0.1, 0.2, 0.3, 0.4, 0.8)
START_SKIP = 5
SHIPPED = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'util')
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
    """The folder a pseudo-label bank flag (--phase2_yv / --phase2_davis) names:
    os.path.join(--phase2_root, bank) as the original joins them."""
    return os.path.join(para['phase2_root'], bank)


def bank_folder(para, flag):
    """The <video>/<frame>.png folder of the bank of --<flag> (util.layout.bank_labels); a
    missing one is a UserError that says how a relative path was joined."""
    bank = bank_path(para, para[flag])
    if not os.path.isdir(bank):
        hint = ''
        if not os.path.isabs(para[flag]) and para['phase2_root'] and os.path.isdir(para[flag]):
            hint = (f' (a relative --{flag} is joined to --phase2_root {para["phase2_root"]}, '
                    f'as in the original; give --phase2_root "" to use {para[flag]} as given)')
        raise UserError(f'{bank}: pseudo-label bank (--{flag}) not found{hint}')
    return bank_labels(bank)


def full_label_subset(para, flag, im_dir):
    """STCN's video list of a full-label data set (--yv_subset / --davis_subset; default the
    shipped util/<flag>.txt): (the listed videos present in im_dir, a note naming the missing
    ones or None); (None, None) for "none". Unlisted videos are not trained on."""
    value = para[flag]
    if value is not None and value.lower() == 'none':
        return None, None
    path = value or os.path.join(SHIPPED, f'{flag}.txt')
    listed = read_list(path, f'video subset list (--{flag})')
    have = set(list_videos(require_dir(im_dir, 'frame folder')))
    missing = [v for v in listed if v not in have]
    if len(missing) == len(listed):
        raise UserError(f'{path}: none of the {len(listed)} videos of the subset list (--{flag}) '
                        f'is in {im_dir}; give --{flag} none to train on every video there')
    note = None
    if missing:
        note = (f'note: {path}: {len(missing)} of {len(listed)} listed videos are not in '
                f'{im_dir} (e.g. {", ".join(missing[:3])}); training on the other '
                f'{len(listed) - len(missing)}')
    return [v for v in listed if v in have], note


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
        self.notes = []                   # lines for the log (videos of a subset list missing)
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
            im=d_im, gt=d_gt, imageset=davis_imageset(davis, 2017, 'train'),
            split=para['davis_data'], bank='phase2_davis', list='davis_subset', divisor=1,
            repeat=5)
        y_im, y_gt = youtube_dirs(para['yv_root'], 'train_480p')
        yv_sets = dict(im=y_im, gt=y_gt, imageset=None, split=para['yv_data'],
                       bank='phase2_yv', list='yv_subset', divisor=5, repeat=1)
        parts = []
        for d in (davis_sets, yv_sets):
            split = load_split(d['split'], max_frames=10 ** 6) if d['split'] else None
            full = split is None and not (mode == PHASE2 and para[d['bank']])
            subset = None
            if full:                      # STCN's full-label stages: its subset lists
                subset, note = full_label_subset(para, d['list'], d['im'])
                self.notes += [note] if note else []
            if subset is None and d['imageset']:       # DAVIS: never the val videos
                subset = read_list(d['imageset'], 'image-set file', folder=d['im'])
            require_dir(d['im'], 'frame folder')
            if mode == PHASE2 and para[d['bank']]:
                bank = bank_folder(para, d['bank'])
                ds = VOSDataset(d['im'], d['gt'], START_SKIP, subset=subset,
                                pseudo_root=bank, labeled_frames=d['split'], crop_size=crop)
                for v in ds.videos:
                    self.bank[v] = {'im_root': d['im'], 'gt_root': d['gt'], 'bank_root': bank,
                                    'labeled': {os.path.splitext(n)[0]
                                                for n in (split or {}).get(v, [])}}
            elif split is not None:
                ds = VOSDataset(d['im'], d['gt'], START_SKIP, subset=subset,
                                two_shot=d['split'], semi=semi, crop_size=crop)
            else:
                ds = VOSDataset(d['im'], d['gt'], START_SKIP, subset=subset,
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
    """{mode: ModeData} for every mode the run reaches: all data is checked before training.
    The data's notes are printed once, by the main process."""
    data = {m: ModeData(para, m, dist_info) for m in modes_reached(para, start_it)}
    for note in dict.fromkeys(n for d in data.values() for n in d.mix.notes):
        print_main(dist_info, note)
    return data

