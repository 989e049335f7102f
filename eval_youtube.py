"""YouTube-VOS valid/test inference, STCN's protocol.

    python eval_youtube.py --model ckpts/stcn.pth --yv_path ../YouTube --output out/yv \
        [--split valid] [--output_all] [--res 480] [--zip] [--top 20] [--mem_every 5] ...

Every frame of <yv_path>/all_frames/<split>_all_frames/JPEGImages/<video>/ is segmented, with
the labels of <split>/Annotations (objects start where they are first labeled); only the
frames listed in <split>/meta.json are written (every frame with --output_all), from the first
label on. --sparse_input segments only <split>/JPEGImages (every 5th frame).
Output: <output>/Annotations/<video>/<frame>.png; --zip also packs it into <output>.zip.
--resume skips the videos whose PNGs are all present and readable. --shard I/N processes every
N-th video from the I-th (0-based): N processes, one per GPU, share one data set and output.
The intermediate inference of phase 2 is eval_youtube_phase2.py, the bank eval_youtube_bank.py.
Exit status: 0 done, 2 bad input (one line naming the file), 130/143 interrupted.
"""
import argparse
import os

import eval_driver
from dataset.yv_test_dataset import YouTubeVOSTestDataset
from util.errors import UserError, run_main

# flags of the phase-2 commands: refused here with the command to use
PHASE2_FLAGS = {'--data_file': 1, '--davis_path': 1, '--reverse': 0, '--only_sec_gt': 0,
                '--davis': 0, '--bank': 0}


def build_parser():
    p = eval_driver.parser('STCN inference on YouTube-VOS valid/test.', mem_every=5)
    p.add_argument('--yv_path', default='../YouTube', help='YouTube-VOS root')
    p.add_argument('--split', default='valid')
    p.add_argument('--output_all', action='store_true',
                   help='write every frame, not only those meta.json lists')
    p.add_argument('--sparse_input', action='store_true',
                   help='segment only the frames of <split>/JPEGImages (every 5th), not every '
                        'frame of all_frames/<split>_all_frames')
    p.add_argument('--res', type=int, default=480,
                   help='shorter side used for inference (-1: as stored)')
    p.add_argument('--zip', action='store_true', help='pack <output>/Annotations into '
                                                      '<output>.zip')
    for flag, nargs in PHASE2_FLAGS.items():
        if nargs:
            p.add_argument(flag, help=argparse.SUPPRESS)
        else:
            p.add_argument(flag, action='store_true', help=argparse.SUPPRESS)
    eval_driver.add_shard_flag(p)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    given = [f for f in PHASE2_FLAGS if getattr(args, f[2:]) not in (None, False)]
    if given:
        use = 'eval_youtube_bank.py' if '--bank' in given else 'eval_youtube_phase2.py'
        raise UserError(f'{given[0]} is not a flag of eval_youtube.py (the YouTube-VOS '
                        f'benchmark): use {use}')
    eval_driver.check_flags(args)
    dataset = YouTubeVOSTestDataset(args.yv_path, args.split, args.output_all, args.res,
                                    sparse_input=args.sparse_input)
    zip_path = os.path.normpath(args.output) + '.zip' if args.zip else None
    return eval_driver.run(args, dataset, os.path.join(args.output, 'Annotations'), 'youtube',
                           shard=args.shard, zip_path=zip_path)


if __name__ == '__main__':
    run_main(main)
