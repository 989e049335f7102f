"""What the eval scripts share: the video loop with --resume, the first labeled frame of a video."""
import os

from inference_core import run_dataset
from util.io import read_mask, skip_complete_videos
from util.layout import list_masks, stem
from util.outputs import OutputLock, note_removed, remove_temporaries


def first_object_frame(stems, mask_dir):
    """Position in `stems` of the first labeled PNG (time order) holding an object, or None
    (also when a PNG has no frame: loading the video then reports it)."""
    pos = {s: i for i, s in enumerate(stems)}
    pngs = list_masks(mask_dir)
    if any(stem(p) not in pos for p in pngs):
        return None
    for p in sorted(pngs, key=lambda p: pos[stem(p)]):
        if read_mask(os.path.join(mask_dir, p)).any():
            return pos[stem(p)]
    return None


def run_videos(net, dataset, out_dir, args, device, mem_style, expected, runner=None):
    """run_dataset (or `runner`) over the videos to do: all, or with --resume the incomplete
    ones (expected(video) -> the stems written for it). Shared by the eval scripts."""
    runner = runner or run_dataset
    every = list(dataset.videos)
    if args.resume:
        skipped = skip_complete_videos(dataset, out_dir, expected)
        print(f'--resume: {len(skipped)} of {len(every)} videos already complete, '
              f'{len(dataset.videos)} to do')
    try:
        dataset.check_videos()             # every video checked before the first output
        shard = getattr(args, 'shard', None)
        with OutputLock(out_dir, 'output folder (--output)', shard=shard):
            if args.resume and shard is None:      # shards may be writing theirs right now
                note_removed(remove_temporaries(out_dir, depth=1), out_dir)
            if len(dataset) == 0:
                return {'videos': 0, 'frames': 0, 'seconds': 0.0, 'fps': float('nan'),
                        'written': 0, 'skipped': len(every)}
            stats = runner(net, dataset, out_dir, top_k=args.top, mem_every=args.mem_every,
                           include_last=args.include_last, mem_style=mem_style, device=device,
                           amp=args.amp, exact_readout=args.exact_readout)
        stats['skipped'] = len(every) - len(dataset.videos)
        return stats
    finally:
        dataset.videos = every
