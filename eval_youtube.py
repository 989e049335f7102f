"""YouTube-VOS inference, and the intermediate inference of two-shot phase 2.

Benchmark mode (YouTube-VOS valid/test), STCN's protocol:
    python eval_youtube.py --model ckpts/stcn.pth --yv_path ../YouTube --output out/yv \
        [--split valid] [--output_all] [--res 480] [--zip] [--top 20] [--mem_every 5] ...
  Every frame of <yv_path>/all_frames/<split>_all_frames/JPEGImages/<video>/ is segmented,
  with the labels of <split>/Annotations (objects start where they are first labeled); only
  the frames listed in <split>/meta.json are written (every frame with --output_all), from the
  first label on. --sparse_input segments only <split>/JPEGImages (every 5th frame).

Intermediate inference (any of --data_file, --reverse, --only_sec_gt, --davis):
    python eval_youtube.py --model phase1.pth --output out/left [--reverse] [--only_sec_gt]
        [--data_file <sparse label folder> | <two-frame split .json>] [--davis --davis_path ..]
  Frames of <yv_path>/train_480p/JPEGImages (or DAVIS 2017 trainval 480p with --davis;
  --davis_path is the folder holding 2017/ or the 2017 folder itself); labels from the sparse
  label folder (default <yv_path>/phase2/yv_gt_480p or <DAVIS 2017>/phase2/davis_gt) or a
  split JSON + the Annotations tree. The four passes left / leftsecgt / right / rightsecgt
  add nothing / --only_sec_gt / --reverse / --reverse --only_sec_gt to `--data_file X` (the
  left pass needs --data_file or --davis to select this mode). Every frame from the first
  used label (processing order) on is written. Memory follows the YouTube-style schedule (a
  frame enters memory once mem_every frames have passed since the last memory frame, counted
  from the label where propagation starts or restarts), DAVIS included; mem_every defaults to
  1 (5 with --davis, which also uses the stored 480p frames whatever --res says).
  eval_youtube_phase2.py is this mode with the original's command line and defaults.

The merged pseudo-label bank in one run (--bank; the same flags, without --reverse /
--only_sec_gt):
    python eval_youtube.py --model phase1.pth --bank --output out/merge [--data_file ..] [--davis]
  Runs each of the four passes only as far as the merge (phase2_scripts/merge_left_right.py)
  uses it and writes <output>/Annotations/<video>/<frame>.png: byte for byte what the four
  passes and the merge write, with about half the frames segmented (phase2/bank.py).

Output: <output>/Annotations/<video>/<frame>.png; --zip also packs it into <output>.zip.
--resume skips the videos whose PNGs are all present and readable. --shard I/N processes every
N-th video from the I-th (0-based): N processes, one per GPU, share one data set and output.
Exit status: 0 done, 2 bad input (one line naming the file), 130/143 interrupted.
"""
import eval_driver
from dataset.test_datasets import YouTubeVOSTestDataset
from phase2 import intermediate
from util.errors import UserError, run_main


def build_parser():
    p = eval_driver.parser('STCN inference on YouTube-VOS / intermediate inference for two-shot '
                           'phase 2.', mem_every=None,
                           mem_every_help='default 5; 1 for intermediate inference (5 with '
                                          '--davis)')
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
    intermediate.add_flags(p, davis_path='../DAVIS')
    eval_driver.add_shard_flag(p)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    mode = intermediate.select_mode(args)
    if args.mem_every is None:
        args.mem_every = 1 if mode != intermediate.BENCHMARK and not args.davis else 5
    eval_driver.check_flags(args)
    intermediate.check_flags(args, mode)
    if args.sparse_input and mode != intermediate.BENCHMARK:
        raise UserError('--sparse_input applies to YouTube-VOS valid/test only')
    if mode == intermediate.BENCHMARK:
        dataset = YouTubeVOSTestDataset(args.yv_path, args.split, args.output_all, args.res,
                                        sparse_input=args.sparse_input)
    else:
        dataset = intermediate.build_dataset(args, mode)
    return intermediate.run(args, mode, dataset)


if __name__ == '__main__':
    run_main(main)
