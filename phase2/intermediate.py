"""Intermediate inference from the command line: what eval_youtube.py and
eval_youtube_phase2.py share.

A run of either script is in one of three modes, decided once by `select_mode` from the
parsed flags:
  BENCHMARK     YouTube-VOS valid/test (eval_youtube.py without the flags below)
  INTERMEDIATE  one of the four passes of docs/method.md (--data_file, --reverse,
                --only_sec_gt or --davis; eval_youtube_phase2.py always)
  BANK          the four passes as far as the merge uses them, merged (--bank)
`run` writes <output>/Annotations/<video>/ in every mode (for the bank the original's bank
layout, util.layout.bank_output), with eval_driver.run.
"""
import os

import eval_driver
from dataset.test_datasets import DAVIS_VOID, IntermediateDataset
from phase2.bank import BankDataset, run_bank
from util.errors import UserError
from util.layout import (bank_output, davis_2017_dir, davis_dirs, davis_sparse_labels,
                          davis_trainval, list_frames, stem, youtube_dirs,
                          youtube_sparse_labels)

BENCHMARK, INTERMEDIATE, BANK = 'benchmark', 'intermediate', 'bank'


def add_flags(p, davis_path):
    """The flag group of intermediate inference; davis_path: the default of --davis_path."""
    g = p.add_argument_group('intermediate inference (phase 2)')
    g.add_argument('--reverse', action='store_true', help='process frames backwards in time')
    g.add_argument('--only_sec_gt', action='store_true',
                   help='use only the second labeled frame met in processing order')
    g.add_argument('--davis', action='store_true', help='DAVIS 2017 trainval frames')
    g.add_argument('--davis_path', default=davis_path,
                   help='DAVIS root: the folder holding 2017/ or the 2017 folder itself')
    g.add_argument('--data_file', default=None,
                   help='sparse label folder <video>/<pngs>, or a two-frame split .json')
    g.add_argument('--bank', action='store_true',
                   help='write the merged pseudo-label bank to --output/Annotations/<video>/ '
                        'directly: the four passes, each only as far as the merge uses it')


def select_mode(args, always_intermediate=False):
    """The mode of a run (the one place it is decided). always_intermediate:
    eval_youtube_phase2.py, whose runs are intermediate inference whatever the flags."""
    if args.bank:
        return BANK
    if always_intermediate or args.data_file or args.reverse or args.only_sec_gt or args.davis:
        return INTERMEDIATE
    return BENCHMARK


def check_flags(args, mode, output_all_ok=False):
    """Refuse flags that the mode cannot honour. output_all_ok: --output_all is accepted as
    the no-op it is in intermediate inference (eval_youtube_phase2.py)."""
    if mode == BENCHMARK:
        return
    if args.output_all and not output_all_ok:
        raise UserError('--output_all applies to YouTube-VOS valid/test only; intermediate '
                        'inference writes every frame from the first label on')
    if mode == BANK and (args.reverse or args.only_sec_gt or args.zip):
        raise UserError('--bank runs all four passes: drop --reverse / --only_sec_gt '
                        '(and --zip, which packs benchmark outputs)')


def build_dataset(args, mode, original_roots=False):
    """The dataset of the passes (BankDataset for BANK). YouTube frames come from train_480p;
    with original_roots (eval_youtube_phase2.py) only at --res -1, from train otherwise,
    with labels from phase2/yv_gt."""
    if args.davis:
        d17 = davis_2017_dir(args.davis_path)
        image_dir, ann_dir = davis_dirs(davis_trainval(d17))
        labels = args.data_file or davis_sparse_labels(d17)
        void = DAVIS_VOID
    else:
        stored = args.res == -1 or not original_roots
        image_dir, ann_dir = youtube_dirs(args.yv_path, 'train_480p' if stored else 'train')
        labels = args.data_file or youtube_sparse_labels(args.yv_path, stored)
        void = None
    res = -1 if args.davis else args.res        # DAVIS: 480p as stored (docs/method.md)
    cls = BankDataset if mode == BANK else IntermediateDataset
    dataset = cls(image_dir, labels, annotation_dir=ann_dir, reverse=args.reverse,
                  only_sec_gt=args.only_sec_gt, res=res, void=void)
    if labels.lower().endswith('.json') and not os.path.isdir(labels):
        check_split_frames(dataset, labels)
    return dataset


def check_split_frames(dataset, split_path):
    """Every frame a split JSON names must have an image and a mask (checked before any
    inference, so a wrong split fails at once and names the JSON)."""
    for v in dataset.videos:
        folder = os.path.join(dataset.image_dir, v)
        stems = {stem(n) for n in list_frames(folder)}
        for path in dataset.label_files[v]:
            s = stem(os.path.basename(path))
            if s not in stems:
                raise UserError(f'{split_path}: video {v!r}: labeled frame {s!r} has no image '
                                f'in {folder}')
            if not os.path.isfile(path):
                raise UserError(f'{split_path}: video {v!r}: labeled frame {s!r} has no mask '
                                f'{path}')


def run(args, mode, dataset):
    """eval_driver.run in `mode`, with the YouTube-style memory schedule (DAVIS intermediate
    inference too, as the original), --shard and --zip."""
    if mode == BANK:
        return eval_driver.run(args, dataset, bank_output(args.output), 'youtube',
                               runner=run_bank, shard=args.shard)
    zip_path = os.path.normpath(args.output) + '.zip' if args.zip else None
    return eval_driver.run(args, dataset, os.path.join(args.output, 'Annotations'), 'youtube',
                           shard=args.shard, zip_path=zip_path)
