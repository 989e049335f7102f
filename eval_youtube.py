"""YouTube-VOS inference, and the intermediate inference of two-shot phase 2.

Benchmark mode (YouTube-VOS valid/test):
    python eval_youtube.py --model ckpts/stcn.pth --yv_path ../YouTube --output out/yv \
        [--split valid] [--output_all] [--res 480] [--zip] [--top 20] [--mem_every 5] ...
  Objects start where they are first labeled; only the frames listed in meta.json are
  written (every frame with --output_all, from all_frames/<split>_all_frames).

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
  uses it and writes <output>/<video>/<frame>.png: byte for byte what the four passes and the
  merge write, with about half the frames segmented (phase2_scripts/bank.py).

Output: <output>/Annotations/<video>/<frame>.png; --zip also packs it into <output>.zip.
--resume skips the videos whose PNGs are all present and readable. --shard I/N processes every
N-th video from the I-th (0-based): N processes, one per GPU, share one data set and output.
Exit status: 0 done, 2 bad input (one line naming the file), 130/143 interrupted.
"""
import argparse
import os
import zipfile

from dataset.test_datasets import (DAVIS_VOID, IntermediateDataset, YouTubeVOSTestDataset,
                                   list_frames, natural_key, stem)
from eval_generic import first_object_frame, run_videos
from inference_core import (add_exact_readout_flag, amp_note, load_model, print_args,
                            run_dataset)
from phase2_scripts.bank import run_bank
from util.device import pick_device
from util.errors import UserError, run_main
from util.io import atomic_write, davis_2017_dir, ensure_writable_dir


def build_parser(phase2=False):
    """The flags of eval_youtube.py; phase2: those of eval_youtube_phase2.py (always
    intermediate inference, the original's defaults)."""
    p = argparse.ArgumentParser(description=(
        'Intermediate inference for two-shot phase 2, the original\'s command line.' if phase2
        else 'STCN inference on YouTube-VOS / intermediate inference for two-shot phase 2.'))
    p.add_argument('--model', default='ckpts/stcn.pth')
    p.add_argument('--yv_path', default='../YouTube')
    p.add_argument('--output', required=True)
    p.add_argument('--split', default='valid')
    p.add_argument('--output_all', action='store_true',
                   help=('accepted for the original\'s command lines: intermediate inference '
                         'writes every frame from the first label on' if phase2 else
                         'write every frame (all_frames/<split>_all_frames), not only '
                         'meta.json'))
    p.add_argument('--top', type=int, default=20)
    p.add_argument('--amp', action='store_true')
    p.add_argument('--mem_every', type=int, default=1 if phase2 else None,
                   help=('default 1 (the original\'s DAVIS scripts pass 5)' if phase2 else
                         'default 5; 1 for intermediate inference (5 with --davis)'))
    p.add_argument('--include_last', action='store_true')
    p.add_argument('--res', type=int, default=480,
                   help=('-1: frames of train_480p, labels of phase2/yv_gt_480p; else frames of '
                         'train resized to this shorter side, labels of phase2/yv_gt' if phase2
                         else 'shorter side used for inference (-1: as stored)'))
    p.add_argument('--zip', action='store_true', help='pack <output>/Annotations into '
                                                      '<output>.zip')
    g = p.add_argument_group('intermediate inference (phase 2)')
    g.add_argument('--reverse', action='store_true', help='process frames backwards in time')
    g.add_argument('--only_sec_gt', action='store_true',
                   help='use only the second labeled frame met in processing order')
    g.add_argument('--davis', action='store_true', help='DAVIS 2017 trainval frames')
    g.add_argument('--davis_path', default='../DAVIS/2017' if phase2 else '../DAVIS',
                   help='DAVIS root: the folder holding 2017/ or the 2017 folder itself')
    g.add_argument('--data_file', default=None,
                   help='sparse label folder <video>/<pngs>, or a two-frame split .json')
    g.add_argument('--bank', action='store_true',
                   help='write the merged pseudo-label bank to --output/<video>/ directly: '
                        'the four passes, each only as far as the merge uses it')
    add_exact_readout_flag(p)
    p.add_argument('--resume', action='store_true',
                   help='skip videos whose output PNGs are all present and readable')
    p.add_argument('--shard', type=shard_arg, default=None, metavar='I/N',
                   help='process only the videos I, I+N, I+2N, ... (0-based, sorted): N '
                        'processes with I = 0..N-1 (one per GPU) share a data set')
    p.add_argument('--device', default=None)
    p.add_argument('--debug', action='store_true')
    return p


def shard_arg(text):
    """'I/N' -> (I, N) with 0 <= I < N."""
    i, _, n = text.partition('/')
    if not (i.isdigit() and n.isdigit()) or not int(i) < int(n):
        raise argparse.ArgumentTypeError(f'{text!r}: expected I/N with 0 <= I < N, e.g. 0/2')
    return int(i), int(n)


def intermediate_dataset(args, phase2=False):
    """The passes' dataset. YouTube frames come from train_480p; with phase2 (the original's
    roots) only at --res -1, from train otherwise, with labels from phase2/yv_gt."""
    if args.davis:
        d17 = davis_2017_dir(args.davis_path)
        image_dir = os.path.join(d17, 'trainval', 'JPEGImages', '480p')
        ann_dir = os.path.join(d17, 'trainval', 'Annotations', '480p')
        labels = args.data_file or os.path.join(d17, 'phase2', 'davis_gt')
        void = DAVIS_VOID
    else:
        stored = args.res == -1 or not phase2
        frames = 'train_480p' if stored else 'train'
        image_dir = os.path.join(args.yv_path, frames, 'JPEGImages')
        ann_dir = os.path.join(args.yv_path, frames, 'Annotations')
        labels = args.data_file or os.path.join(args.yv_path, 'phase2',
                                                'yv_gt_480p' if stored else 'yv_gt')
        void = None
    res = -1 if args.davis else args.res        # DAVIS: 480p as stored
    dataset = IntermediateDataset(image_dir, labels, annotation_dir=ann_dir,
                                  reverse=args.reverse, only_sec_gt=args.only_sec_gt, res=res,
                                  void=void)
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


def intermediate_expected(dataset, name):
    """Stems written by an intermediate pass: every frame (processing order) from the first
    used label on."""
    stems = [stem(n) for n in list_frames(os.path.join(dataset.image_dir, name))]
    if dataset.reverse:
        stems = stems[::-1]
    pos = {s: i for i, s in enumerate(stems)}
    used = [stem(os.path.basename(p)) for p in dataset.label_files[name]]
    if any(s not in pos for s in used):
        return None
    used = sorted(used, key=pos.get)
    if dataset.only_sec_gt and len(used) > 1:
        used = used[1:2]
    return stems[pos[used[0]]:]


def benchmark_expected(dataset, name):
    """Stems written for a YouTube-VOS valid/test video: the meta.json frames (every frame
    with --output_all) from the first labeled object on."""
    stems = [stem(n) for n in list_frames(os.path.join(dataset.image_dir, name))]
    first = first_object_frame(stems, os.path.join(dataset.mask_dir, name))
    if first is None:
        return None
    if dataset.output_all:
        return stems[first:]
    listed = dataset.listed_frames(name)
    if listed - set(stems):
        return None
    return sorted((s for i, s in enumerate(stems) if i >= first and s in listed),
                  key=natural_key)


def zip_annotations(output):
    """<output>/Annotations/** -> <output>.zip (entries Annotations/<video>/<frame>.png)."""
    src = os.path.join(output, 'Annotations')
    target = os.path.normpath(output) + '.zip'

    def write(tmp):
        with zipfile.ZipFile(tmp, 'w', zipfile.ZIP_DEFLATED) as z:
            for folder, dirs, files in os.walk(src):
                dirs.sort()
                for f in sorted(files):
                    if f.startswith('.'):
                        continue
                    path = os.path.join(folder, f)
                    z.write(path, os.path.relpath(path, output))
    atomic_write(target, write)
    print(f'packed {src} into {target}')
    return target


def main(argv=None, phase2=False):
    """phase2: eval_youtube_phase2.py (always intermediate inference, --output_all a no-op)."""
    args = build_parser(phase2).parse_args(argv)
    intermediate = phase2 or bool(args.data_file or args.reverse or args.only_sec_gt
                                  or args.davis or args.bank)
    if args.mem_every is None:
        args.mem_every = 1 if intermediate and not args.davis else 5
    print_args(args)
    if args.mem_every < 1 or args.top < 1:
        raise UserError('--mem_every and --top must be >= 1')
    if intermediate:
        if args.output_all and not phase2:
            raise UserError('--output_all applies to YouTube-VOS valid/test only; intermediate '
                            'inference writes every frame from the first label on')
        if args.bank and (args.reverse or args.only_sec_gt or args.zip):
            raise UserError('--bank runs all four passes: drop --reverse / --only_sec_gt '
                            '(and --zip, which packs benchmark outputs)')
        dataset = intermediate_dataset(args, phase2)
    else:
        dataset = YouTubeVOSTestDataset(args.yv_path, args.split, args.output_all, args.res)
    if args.shard:
        if args.zip:
            raise UserError('--zip with --shard would pack a part of the outputs: pack them '
                            'once every shard is done (rerun without --shard, with --resume '
                            '--zip)')
        i, n = args.shard
        dataset.videos = dataset.videos[i::n]
        print(f'--shard {i}/{n}: {len(dataset.videos)} videos')
    device = pick_device(args.device)
    note = amp_note(device, args.amp)
    if note:
        print(note)
    net = load_model(args.model, device)
    mem_style = 'youtube'                    # DAVIS intermediate inference too, as the original
    shared = args.shard is not None          # other shards may probe the folder at once
    if args.bank:
        out_dir = ensure_writable_dir(args.output, 'output folder (--output)', keep=shared)
        return run_videos(net, dataset, out_dir, args, device, mem_style,
                          lambda v: [stem(n) for n in
                                     list_frames(os.path.join(dataset.image_dir, v))],
                          runner=run_bank)
    out_dir = ensure_writable_dir(os.path.join(args.output, 'Annotations'),
                                  'output folder (--output)', keep=shared)
    expected = intermediate_expected if intermediate else benchmark_expected
    stats = run_videos(net, dataset, out_dir, args, device, mem_style,
                       lambda v: expected(dataset, v), runner=run_dataset)
    if args.zip:
        stats['zip'] = zip_annotations(args.output)
    return stats


if __name__ == '__main__':
    run_main(main)
