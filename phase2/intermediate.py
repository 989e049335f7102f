"""Intermediate inference from the command line: what eval_youtube_phase2.py (the four
passes of docs/method.md) and eval_youtube_bank.py (the merged bank in one run) share.

`run` writes <output>/Annotations/<video>/ (for the bank the original's bank layout,
util.layout.bank_output) with eval_driver.run and the YouTube-style memory schedule.
"""
import os

import eval_driver
from dataset.eval_dataset import DAVIS_VOID
from phase2.bank import BankDataset, run_bank
from phase2.passes_dataset import IntermediateDataset
from util.errors import UserError
from util.layout import (bank_output, davis_2017_dir, davis_dirs, davis_sparse_labels,
                          davis_trainval, list_frames, stem, youtube_dirs,
                          youtube_sparse_labels)


def build_parser(description, bank):
    """The command line of both commands (the original's, with its defaults); bank: no
    --reverse / --only_sec_gt / --zip (the bank command runs all four passes)."""
    p = eval_driver.parser(description, mem_every=1,
                           mem_every_help='default 1 (the original\'s DAVIS scripts pass 5)')
    p.add_argument('--yv_path', default='../YouTube', help='YouTube-VOS root')
    p.add_argument('--split', default='valid', help='accepted for the original\'s command '
                                                    'lines (unused here)')
    p.add_argument('--output_all', action='store_true',
                   help='accepted for the original\'s command lines: intermediate inference '
                        'writes every frame from the first label on')
    p.add_argument('--res', type=int, default=480,
                   help='-1: frames of train_480p, labels of phase2/yv_gt_480p; else frames of '
                        'train resized to this shorter side, labels of phase2/yv_gt')
    if not bank:
        p.add_argument('--zip', action='store_true', help='pack <output>/Annotations into '
                                                          '<output>.zip')
        p.add_argument('--reverse', action='store_true',
                       help='process frames backwards in time')
        p.add_argument('--only_sec_gt', action='store_true',
                       help='use only the second labeled frame met in processing order')
    p.add_argument('--davis', action='store_true', help='DAVIS 2017 trainval frames')
    p.add_argument('--davis_path', default='../DAVIS/2017',
                   help='DAVIS root: the folder holding 2017/ or the 2017 folder itself')
    p.add_argument('--data_file', default=None,
                   help='sparse label folder <video>/<pngs>, or a two-frame split .json')
    eval_driver.add_shard_flag(p)
    return p


def main(args, bank):
    """Check the flags, build the dataset of the passes (BankDataset for the bank) and run."""
    eval_driver.check_flags(args)
    dataset = build_dataset(args, bank)
    if bank:
        return eval_driver.run(args, dataset, bank_output(args.output), 'youtube',
                               runner=run_bank, shard=args.shard)
    zip_path = os.path.normpath(args.output) + '.zip' if args.zip else None
    return eval_driver.run(args, dataset, os.path.join(args.output, 'Annotations'), 'youtube',
                           shard=args.shard, zip_path=zip_path)


def build_dataset(args, bank):
    """The dataset of the passes. YouTube frames come from train_480p at --res -1, from
    train otherwise, with labels from phase2/yv_gt_480p or phase2/yv_gt."""
    if args.davis:
        d17 = davis_2017_dir(args.davis_path)
        image_dir, ann_dir = davis_dirs(davis_trainval(d17))
        labels = args.data_file or davis_sparse_labels(d17)
        void = DAVIS_VOID
    else:
        stored = args.res == -1
        image_dir, ann_dir = youtube_dirs(args.yv_path, 'train_480p' if stored else 'train')
        labels = args.data_file or youtube_sparse_labels(args.yv_path, stored)
        void = None
    res = -1 if args.davis else args.res        # DAVIS: 480p as stored (docs/method.md)
    if bank:
        dataset = BankDataset(image_dir, labels, annotation_dir=ann_dir, res=res, void=void)
    else:
        dataset = IntermediateDataset(image_dir, labels, annotation_dir=ann_dir,
                                      reverse=args.reverse, only_sec_gt=args.only_sec_gt,
                                      res=res, void=void)
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
