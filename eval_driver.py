"""The evaluation driver: the flags, set-up and video loop every eval script shares.

An eval script is its own flags, a test dataset (dataset/*_test_dataset.py) and a call here:

    p = eval_driver.parser('...')            # --model --output --top --amp --mem_every ...
    p.add_argument('--data_path', ...)       # the script's own flags
    args = p.parse_args(argv)
    eval_driver.check_flags(args)            # prints the settings
    dataset = SomeTestDataset(args.data_path)
    return eval_driver.run(args, dataset, args.output, mem_style='youtube')

`run` checks the outputs lie apart from the inputs, picks the device, loads the model and
segments the videos to do: every video of the dataset (with --shard one in N), less, with
--resume, those whose outputs (`dataset.output_frames`) are all present and readable. The
videos to do are checked before the first output is written. The settings that shape the
outputs (OUTPUT_FLAGS, the model's digest) are recorded in <out_dir>/.settings.json; a
--resume with other ones is refused. An output entry that is a symbolic link is refused, never
written through.
"""
import argparse
import os
import zipfile

import torch

from dataset.davis_test_dataset import DAVISTestDataset
from inference_core import InferenceConfig
from model.precision import CUDA_AMP_DTYPES, amp_note
from util.device import pick_device
from util.errors import UserError
from util.files import atomic_write, ensure_writable_dir
from util.image_io import complete_pngs
from util.outputs import (OutputLock, check_apart, check_file_output, check_folder_output,
                          check_settings, file_digest, forget_settings, note_removed,
                          record_settings, refuse_links, remove_temporaries)
from util.peak_memory import peak_memory, peak_memory_text
from video_runner import load_model, run_dataset

OUTPUT = 'output folder (--output)'
# the flags that shape the outputs: a --resume with other values is refused (with the model)
OUTPUT_FLAGS = ('top', 'mem_every', 'include_last', 'exact_readout', 'max_mem_frames', 'amp',
                'amp_dtype', 'res', 'output_all', 'sparse_input', 'split', 'year', 'reverse',
                'only_sec_gt', 'davis', 'bank')


def parser(description, mem_every=5, mem_every_help='a frame enters memory every this many '
                                                    'frames'):
    """An ArgumentParser holding the flags every eval script shares; the script adds its own.
    mem_every: the default of --mem_every."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument('--model', default='ckpts/stcn.pth', help='checkpoint (state_dict)')
    p.add_argument('--output', required=True, help='output folder')
    p.add_argument('--top', type=int, default=20, help='top-k memory entries per pixel')
    p.add_argument('--amp', action='store_true',
                   help='mixed precision: autocast on CUDA (fp16, or --amp_dtype), bf16 on a '
                        'CPU with native bf16 (avx512_bf16 / amx_bf16), else fp32')
    p.add_argument('--amp_dtype', choices=sorted(CUDA_AMP_DTYPES), default='fp16',
                   help='the autocast dtype of --amp on CUDA (default fp16, as the originals)')
    p.add_argument('--mem_every', type=int, default=mem_every, help=mem_every_help)
    p.add_argument('--include_last', action='store_true',
                   help='keep the previous frame as a temporary memory entry')
    p.add_argument('--exact_readout', action='store_true',
                   help='the dense top-k readout of the original code (slower): fp32 masks '
                        'bitwise the original computation\'s, where the default gathered '
                        'readout may flip a pixel whose two best objects are within ~1e-6')
    p.add_argument('--max_mem_frames', type=int, default=None, metavar='N',
                   help='bound the memory: the labeled frames and the N most recent other '
                        'memory frames (first in, first out); default: every memory frame')
    p.add_argument('--resume', action='store_true',
                   help='skip videos whose output PNGs are all present and readable')
    p.add_argument('--device', default=None, help="'cuda', 'cuda:1' or 'cpu' (default: auto)")
    p.add_argument('--debug', action='store_true', help='full tracebacks on errors')
    return p


def add_shard_flag(p):
    p.add_argument('--shard', type=shard_arg, default=None, metavar='I/N',
                   help='process only the videos I, I+N, I+2N, ... (0-based, sorted): N '
                        'processes with I = 0..N-1 (one per GPU) share a data set')


def shard_arg(text):
    """'I/N' -> (I, N) with 0 <= I < N."""
    i, _, n = text.partition('/')
    if not (i.isdigit() and n.isdigit()) or not int(i) < int(n):
        raise argparse.ArgumentTypeError(f'{text!r}: expected I/N with 0 <= I < N, e.g. 0/2')
    return int(i), int(n)


def check_flags(args):
    """Print the settings; refuse the shared flags' impossible values."""
    print('settings: ' + ', '.join(f'{k}={v}' for k, v in sorted(vars(args).items())))
    if args.mem_every < 1 or args.top < 1:
        raise UserError('--mem_every and --top must be >= 1')
    if args.max_mem_frames is not None and args.max_mem_frames < 1:
        raise UserError(f'--max_mem_frames must be >= 1, got {args.max_mem_frames}')


def run(args, dataset, out_dir, mem_style, runner=None, shard=None, zip_path=None):
    """Segment the videos to do of `dataset` into `out_dir` (under --output).

    mem_style: inference_core's memory schedule. runner: what segments and writes the
    videos (default video_runner.run_dataset; phase2.bank.run_bank for the bank).
    shard: (I, N) of --shard. zip_path: also pack --output's files into this zip (--zip).
    Returns the runner's stats plus 'skipped' (videos --resume found complete) and 'zip'.
    """
    check_folder_output(out_dir, OUTPUT)
    check_file_output(zip_path, 'zip file (--zip)', dataset.inputs)
    check_apart([(OUTPUT, args.output), (OUTPUT, out_dir)], dataset.inputs)
    if os.path.normpath(out_dir) != os.path.normpath(args.output):
        refuse_links(args.output, [os.path.relpath(out_dir, args.output)], OUTPUT)
    videos = list(dataset.videos)
    if shard:
        if zip_path:
            raise UserError('--zip with --shard would pack a part of the outputs: pack them '
                            'once every shard is done (rerun without --shard, with --resume '
                            '--zip)')
        i, n = shard
        videos = videos[i::n]
        print(f'--shard {i}/{n}: {len(videos)} videos')
    device = pick_device(args.device)
    if args.amp and args.amp_dtype == 'bf16' and device.type == 'cuda' and \
            not torch.cuda.is_bf16_supported():
        raise UserError('--amp_dtype bf16: this GPU does not compute bf16; use fp16 (the '
                        'default)')
    note = amp_note(device, args.amp)
    if note:
        print(note)
    net = load_model(args.model, device, inference_amp(args))
    out_dir = ensure_writable_dir(out_dir, OUTPUT, keep=shard is not None)  # shards probe at once
    stats = run_videos(net, dataset, videos, out_dir, args, device, mem_style,
                       runner or run_dataset, shard)
    if zip_path:
        stats['zip'] = zip_outputs(args.output, out_dir, zip_path)
    return stats


def run_davis(args):
    """DAVIS <year> <split> into --output (eval_davis.py, eval_davis_2016.py); with --evaluate,
    J&F against the split's annotations into --output's CSVs."""
    if args.evaluate and args.split == 'testdev':
        raise UserError('--evaluate: test-dev has no public annotations beyond the first frame')
    dataset = DAVISTestDataset(args.davis_path, args.year, args.split)
    stats = run(args, dataset, args.output, mem_style='davis')
    if args.evaluate:
        from util.metrics import evaluate     # cv2 is imported only for scoring
        stats['results'] = evaluate(dataset.root, args.output, imageset=dataset.imageset,
                                    split=dataset.split, out_dir=args.output,
                                    binarize=dataset.year == 2016)   # 2016 truth is 0/255
    return stats


def inference_amp(args):
    """--amp as InferenceConfig takes it: False, or the --amp_dtype name."""
    return args.amp and args.amp_dtype


def inference_config(args, mem_style):
    """The InferenceConfig of the shared flags; mem_style: the script's memory schedule."""
    return InferenceConfig(top_k=args.top, mem_every=args.mem_every, mem_style=mem_style,
                           include_last=args.include_last, max_mem_frames=args.max_mem_frames,
                           exact_readout=args.exact_readout, amp=inference_amp(args))


def output_settings(args):
    """{flag: value} of the settings that shape the outputs, the model by its digest."""
    settings = {f'--{k}': getattr(args, k) for k in OUTPUT_FLAGS if hasattr(args, k)}
    model = str(args.model)
    settings['--model (sha256)'] = file_digest(model) if os.path.isfile(model) else model
    return settings


def complete(dataset, out_dir, name):
    """Whether every output PNG of video `name` is present and decodes (--resume)."""
    stems = dataset.output_frames(name)
    return bool(stems) and complete_pngs(os.path.join(str(out_dir), name), stems)


def run_videos(net, dataset, videos, out_dir, args, device, mem_style, runner, shard=None):
    """runner over `videos`, less, with --resume, the complete ones; the runner's stats plus
    'skipped'."""
    todo = videos
    refuse_links(out_dir, videos, OUTPUT)
    settings = output_settings(args)
    if args.resume:
        check_settings(out_dir, settings)
        todo = [v for v in videos if not complete(dataset, out_dir, v)]
        print(f'--resume: {len(videos) - len(todo)} of {len(videos)} videos already complete, '
              f'{len(todo)} to do')
    dataset.check_videos(todo)             # every video checked before the first output
    with OutputLock(out_dir, OUTPUT, shard=shard):
        if args.resume and shard is None:      # shards may be writing theirs right now
            note_removed(remove_temporaries(out_dir, depth=1), out_dir)
        record_settings(out_dir, settings)
        if not todo:
            print(f'0 videos, 0 frames segmented; {peak_memory_text(device)}')
            return {'videos': 0, 'frames': 0, 'seconds': 0.0, 'fps': float('nan'),
                    'written': 0, 'skipped': len(videos), 'peak_memory': peak_memory(device)[0]}
        try:
            stats = runner(net, dataset, out_dir, inference_config(args, mem_style),
                           videos=todo, device=device)
        finally:
            forget_settings(out_dir)             # unless some output was written
    stats['skipped'] = len(videos) - len(todo)
    return stats


def zip_outputs(root, folder, target):
    """<folder>/** -> zip file `target`, entries named relative to `root` (atomic)."""
    def write(tmp):
        with zipfile.ZipFile(tmp, 'w', zipfile.ZIP_DEFLATED) as z:
            for d, dirs, files in os.walk(folder):
                dirs.sort()
                for f in sorted(files):
                    if f.startswith('.'):
                        continue
                    path = os.path.join(d, f)
                    z.write(path, os.path.relpath(path, root))
    atomic_write(target, write)
    print(f'packed {folder} into {target}')
    return target
