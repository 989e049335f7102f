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
"""
import datetime
import hashlib
import math
import os
import sys

import torch
from torch.utils.data import ConcatDataset, DataLoader, DistributedSampler

from util.errors import UserError, run_main

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
    if para['semi'] and it >= para['end_warm']:
        return 'semi'
    return 'base'


def check_flags(para):
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


def _require_dir(path, what):
    if not os.path.isdir(path):
        raise UserError(f'{path}: {what} not found')
    return path


def _read_list(path):
    if not os.path.isfile(path):
        raise UserError(f'{path}: video list not found')
    with open(path) as f:
        return [line.strip() for line in f if line.strip()]


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
            root = _require_dir(para['static_root'], 'static image root (--static_root)')
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
            root = _require_dir(para['bl_root'], 'BL30K root (--bl_root)')
            ds = VOSDataset(os.path.join(root, 'JPEGImages'), os.path.join(root, 'Annotations'),
                            START_SKIP, is_bl=True, crop_size=crop)
            self.videos.append((ds, 1))
            self.dataset = ds
            return
        semi = mode == 'semi'
        davis = os.path.join(para['davis_root'], '2017', 'trainval')
        davis_sets = dict(
            im=os.path.join(davis, 'JPEGImages', '480p'),
            gt=os.path.join(davis, 'Annotations', '480p'),
            subset=_read_list(os.path.join(davis, 'ImageSets', '2017', 'train.txt')),
            split=para['davis_data'], bank=para['phase2_davis'], divisor=1, repeat=5)
        yv = os.path.join(para['yv_root'], 'train_480p')
        yv_sets = dict(im=os.path.join(yv, 'JPEGImages'), gt=os.path.join(yv, 'Annotations'),
                       subset=None, split=para['yv_data'], bank=para['phase2_yv'], divisor=5,
                       repeat=1)
        parts = []
        for d in (davis_sets, yv_sets):
            _require_dir(d['im'], 'frame folder')
            split = load_split(d['split'], max_frames=10 ** 6) if d['split'] else None
            if mode == 'phase2' and d['bank']:
                bank = os.path.join(para['phase2_root'], d['bank']) if para['phase2_root'] \
                    else d['bank']
                _require_dir(bank, 'pseudo-label bank')
                ds = VOSDataset(d['im'], d['gt'], START_SKIP, subset=d['subset'],
                                pseudo_root=bank, labeled_frames=split, crop_size=crop)
                for v in ds.videos:
                    self.bank[v] = {'im_root': d['im'], 'gt_root': d['gt'], 'bank_root': bank,
                                    'labeled': {os.path.splitext(n)[0]
                                                for n in (split or {}).get(v, [])}}
            elif split is not None:
                ds = VOSDataset(d['im'], d['gt'], START_SKIP, subset=d['subset'],
                                two_shot=split, semi=semi, crop_size=crop)
            else:
                ds = VOSDataset(d['im'], d['gt'], START_SKIP, subset=d['subset'],
                                crop_size=crop)
            self.videos.append((ds, d['divisor']))
            parts += [ds] * d['repeat']
        self.dataset = ConcatDataset(parts)

    def set_max_skip(self, skip):
        for ds, divisor in self.videos:
            ds.max_jump = max(1, skip // divisor)


def make_loader(dataset, para, dist_info):
    from dataset.reseed import make_worker_init_fn
    sampler = DistributedSampler(dataset, num_replicas=dist_info.world_size,
                                 rank=dist_info.rank, shuffle=True, seed=para['seed'],
                                 drop_last=False)
    loader = DataLoader(dataset, batch_size=para['batch_size'], sampler=sampler,
                        num_workers=para['num_workers'], drop_last=True,
                        pin_memory=dist_info.device.type == 'cuda',
                        worker_init_fn=make_worker_init_fn(para['seed'], dist_info.rank))
    if len(loader) == 0:
        raise UserError(f'{len(dataset)} training samples over {dist_info.world_size} '
                        f'process(es) do not fill one batch of {para["batch_size"]}; '
                        'lower --batch_size')
    return sampler, loader


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
    from util.distributed import broadcast_object, cleanup, init_distributed
    from util.hyper_para import HyperParameters
    from util.io import atomic_write
    from util.logger import TensorboardLogger

    argv = sys.argv[1:] if argv is None else list(argv)
    para = HyperParameters().parse(argv)
    check_flags(para)
    dist_info = init_distributed(para['local_rank'], para['device'])
    try:
        if para['benchmark'] and dist_info.device.type == 'cuda':
            torch.backends.cudnn.benchmark = True
        reseed(para['seed'])              # identical model init on every rank
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
        logger = TensorboardLogger(run_dir, enabled=dist_info.is_main)
        model = STCNModel(para, dist_info, logger=logger,
                          save_path=os.path.join(run_dir, run_name))
        start_it = 0
        if para['load_model']:
            start_it = model.load_model(para['load_model'])
            print(f'resumed {para["load_model"]} at iteration {start_it} '
                  f'(lr {model.current_lr():.3g})', flush=True)
        elif para['load_network']:
            model.load_network(para['load_network'])
            print(f'loaded network {para["load_network"]}', flush=True)
        model.wrap()
        reseed(para['seed'] + dist_info.rank)   # different in-process augmentation per rank
        train_loop(para, dist_info, model, start_it)
        if para['iterations'] % para['save_every']:      # else saved by the loop
            model.save(para['iterations'])
        if para['debug']:
            digest = weights_digest(model.net)
            print(f'rank {dist_info.rank} weights sha256 {digest}', flush=True)
            atomic_write(os.path.join(run_dir, f'rank{dist_info.rank}_weights.sha256'),
                         lambda tmp: open(tmp, 'w').write(digest + '\n'))
        logger.close()
    finally:
        cleanup(dist_info)
    return 0


def train_loop(para, dist_info, model, it):
    """Iterate until para['iterations']; rebuilds the data when the data mode changes."""
    total = para['iterations']
    mode = mix = loader = None
    epoch = total_epochs = 0
    cur_skip = None
    model.start_timer(it)
    while it < total:
        if data_mode(para, it) != mode:
            mode = data_mode(para, it)
            mix = DataMix(para, mode)
            model.bank = mix.bank
            sampler, loader = make_loader(mix.dataset, para, dist_info)
            total_epochs = math.ceil(total / len(loader))
            epoch = it // len(loader)
            print_main(dist_info, f'data: {mode}, {len(mix.dataset)} samples, '
                                  f'{len(loader)} iterations per epoch, {total_epochs} epochs')
        if para['stage'] != 0:
            skip = max_skip_at(epoch, total_epochs, bl=para['stage'] == 1)
            if skip != cur_skip:
                print_main(dist_info, f'epoch {epoch}: maximum frame skip {skip}')
                cur_skip = skip
            mix.set_max_skip(skip)
        sampler.set_epoch(epoch)
        for data in loader:
            if data_mode(para, it) != mode:
                break
            model.do_pass(data, it)
            it += 1
            if it % para['save_every'] == 0:
                model.save(it)
            if it >= total:
                break
        epoch += 1
    return it


def print_main(dist_info, text):
    if dist_info.is_main:
        print(text, flush=True)


if __name__ == '__main__':
    run_main(main)
