"""Every training flag: STCN's originals, the two-shot additions and a few new ones.

The original code's command lines parse unchanged. Flags whose default depends on
the stage (lr, batch size, iterations, lr-drop steps) default to None and are resolved from
STAGE_DEFAULTS (docs/method.md, "Training") after parsing, so an explicit value always wins.

    para = HyperParameters(); para.parse(argv)
    para['lr'], para.args (a plain dict), para.to_json()
"""
import argparse
import json
import math

from util.errors import UserError

# stage: (lr, batch size per process, iterations, lr-drop steps)
STAGE_DEFAULTS = {
    0: (1e-5, 8, 300000, [150000]),     # static images, single object
    1: (1e-5, 4, 500000, [400000]),     # BL30K
    2: (1e-5, 4, 300000, [250000]),     # DAVIS + YouTube after BL30K
    3: (1e-5, 4, 150000, [125000]),     # DAVIS + YouTube after static
}


def build_parser():
    p = argparse.ArgumentParser(
        description='Train STCN (stages 0-3), two-shot phase 1 (--semi) and phase 2 '
                    '(--phase2_train). Launch with torchrun, python -m torch.distributed.launch '
                    'or plain python (one process).')
    # ---- STCN's original flags
    p.add_argument('--benchmark', action='store_true', help='enable cudnn.benchmark')
    p.add_argument('--no_amp', action='store_true', help='disable mixed precision (CUDA only)')
    p.add_argument('--static_root', default='../static')
    p.add_argument('--bl_root', default='../BL30K')
    p.add_argument('--yv_root', default='../YouTube')
    p.add_argument('--davis_root', default='../DAVIS',
                   help='the folder holding 2017/ (or the 2017 folder itself)')
    p.add_argument('--stage', type=int, default=0, choices=[0, 1, 2, 3],
                   help='0 static, 1 BL30K, 2 DAVIS+YouTube after BL30K, 3 after static')
    p.add_argument('-b', '--batch_size', type=int, default=None,
                   help='per process; default by stage (8 for stage 0, else 4)')
    p.add_argument('-i', '--iterations', type=int, default=None,
                   help='default by stage (300k, 500k, 300k, 150k)')
    p.add_argument('--steps', type=int, nargs='*', default=None,
                   help='lr drop iterations; default by stage (150k, 400k, 250k, 125k)')
    p.add_argument('--lr', type=float, default=None, help='default 1e-5')
    p.add_argument('--gamma', type=float, default=0.1, help='lr factor at each step')
    p.add_argument('--load_network', default=None,
                   help='network weights to start from (stage-0 checkpoints are mapped)')
    p.add_argument('--load_model', default=None,
                   help='a *_checkpoint.pth to resume (network, teacher, optimiser, iteration)')
    p.add_argument('--id', default='NULL', help='experiment name (run folder <date>_<id>)')
    p.add_argument('--debug', action='store_true',
                   help='log every iteration, full tracebacks, per-rank weight digests')
    p.add_argument('--local_rank', '--local-rank', dest='local_rank', type=int, default=0,
                   help='set by python -m torch.distributed.launch (torchrun sets LOCAL_RANK)')
    # ---- two-shot (phase 1)
    p.add_argument('--yv_data', default=None,
                   help='JSON {video: [labeled frames]} for YouTube-VOS (two-shot)')
    p.add_argument('--davis_data', default=None, help='JSON {video: [labeled frames]} for DAVIS')
    p.add_argument('--semi', action='store_true',
                   help='after --end_warm, train on triplets with unlabeled frames (pseudo labels)')
    p.add_argument('--semi_thres_upper', type=float, default=0.9,
                   help='a pseudo label is kept where its class probability is >= this')
    p.add_argument('--semi_thres_lower', type=float, default=0.1,
                   help='recorded only (kept for command-line compatibility)')
    p.add_argument('--end_warm', type=int, default=70000,
                   help='unlabeled frames are used after this iteration (labeled-only up to it)')
    p.add_argument('--use_teacher', action='store_true', help='EMA teacher makes pseudo labels')
    p.add_argument('--ema_alpha', type=float, default=0.995)
    # ---- phase 2
    p.add_argument('--phase2_yv', default=None,
                   help='YouTube pseudo-label bank: the merge\'s folder, read from its '
                        'Annotations/ (or the folder itself when it has none)')
    p.add_argument('--phase2_davis', default=None, help='DAVIS pseudo-label bank (as --phase2_yv)')
    p.add_argument('--phase2_root', default='../vos_phase2',
                   help='folder a relative --phase2_yv / --phase2_davis is joined to '
                        '(os.path.join, as the original: an absolute path or one starting '
                        'with ../vos_phase2 names the same folder; "" = as given)')
    p.add_argument('--phase2_train', type=int, default=-1,
                   help='iteration from which phase-2 data is used (-1 = off)')
    p.add_argument('--phase2_thres', type=float, default=0.99,
                   help='confidence for the in-batch refresh of pseudo labels')
    p.add_argument('--phase2_start_update', type=int, default=70000,
                   help='iteration from which pseudo labels are refreshed in-batch')
    p.add_argument('--update_pseudo_bank', type=int, default=-1,
                   help='iteration from which refreshed labels are written back to the bank '
                        '(-1 = off)')
    # ---- STCN's training subsets (its train.py reads util/yv_subset.txt, util/davis_subset.txt)
    p.add_argument('--yv_subset', default=None,
                   help='YouTube-VOS videos of the full-label stages 2/3 (default: the shipped '
                        'util/yv_subset.txt, STCN\'s list); "none": every video of train_480p')
    p.add_argument('--davis_subset', default=None,
                   help='DAVIS videos of the full-label stages 2/3 (default: the shipped '
                        'util/davis_subset.txt, STCN\'s list); "none": ImageSets/2017/train.txt')
    # ---- new
    p.add_argument('--phase2_keep_true_labels', action='store_true',
                   help='phase 2: never refresh nor write back the truly labeled frames (the '
                        'original refreshes frames 1-2 of every sample)')
    p.add_argument('--device', default=None, help='cuda, cuda:N or cpu (default: CUDA if present)')
    p.add_argument('--cpu_bf16', action='store_true',
                   help='on a CPU that computes bf16 natively (avx512_bf16 / amx_bf16): '
                        'mixed precision as bf16 autocast (default: fp32 on CPU; '
                        '--no_amp wins)')
    p.add_argument('--crop_size', type=int, default=384, help='training crop (multiple of 16)')
    p.add_argument('--save_root', default='saves', help='runs go to <save_root>/<date>_<id>/')
    p.add_argument('--num_workers', type=int, default=8, help='data loader workers per process')
    p.add_argument('--seed', type=int, default=14159265)
    p.add_argument('--bce_start_warm', type=int, default=20000,
                   help='bootstrapped CE: plain CE before this iteration')
    p.add_argument('--bce_end_warm', type=int, default=70000,
                   help='bootstrapped CE: hardest-pixel fraction reaches 0.15 here')
    p.add_argument('--log_every', type=int, default=100, help='TensorBoard scalars interval')
    p.add_argument('--image_every', type=int, default=800, help='TensorBoard images interval')
    p.add_argument('--save_every', type=int, default=50000, help='network save interval')
    return p


class HyperParameters:
    """Parsed flags as a dict-like object (para['lr'])."""

    def __init__(self):
        self.args = {}

    def parse(self, argv=None):
        parser = build_parser()
        args = vars(parser.parse_args(argv))
        lr, bs, iters, steps = STAGE_DEFAULTS[args['stage']]
        for key, default in (('lr', lr), ('batch_size', bs), ('iterations', iters),
                             ('steps', steps)):
            if args[key] is None:
                args[key] = default
        args['amp'] = not args['no_amp']
        if args['debug']:
            args['log_every'] = 1
            args['image_every'] = 1
        problems = []
        if args['batch_size'] < 1:
            problems.append('--batch_size must be >= 1')
        if args['num_workers'] < 0:
            problems.append('--num_workers must be >= 0')
        if args['iterations'] < 1:
            problems.append('--iterations must be >= 1')
        if args['crop_size'] < 16 or args['crop_size'] % 16:
            problems.append('--crop_size must be a positive multiple of 16')
        for k in ('log_every', 'image_every', 'save_every'):
            if args[k] < 1:
                problems.append(f'--{k} must be >= 1')
        for k in ('lr', 'gamma'):
            if not (math.isfinite(args[k]) and args[k] > 0):
                problems.append(f'--{k} must be a positive finite number (got {args[k]})')
        for k in ('ema_alpha', 'semi_thres_upper', 'semi_thres_lower', 'phase2_thres'):
            if not 0.0 <= args[k] <= 1.0:        # NaN fails too
                problems.append(f'--{k} must be in [0, 1] (got {args[k]})')
        if problems:
            parser.error('; '.join(problems))
        self.args = args
        return self

    def to_json(self):
        return json.dumps(self.args, indent=1, sort_keys=True)

    def __getitem__(self, key):
        return self.args[key]

    def __setitem__(self, key, value):
        self.args[key] = value

    def __contains__(self, key):
        return key in self.args

    def get(self, key, default=None):
        return self.args.get(key, default)

    def __str__(self):
        return '\n'.join(f'{k}: {self.args[k]}' for k in sorted(self.args))


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
