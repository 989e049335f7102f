"""The video runner of the eval scripts: load the network, run a test dataset's videos through
the engine (inference_core.InferenceCore) and write their masks as palette PNGs.

`segment_video` runs one `dataset.eval_dataset.Video` (labels propagated in processing order,
the masks to output), `run_dataset` the videos of a test dataset; `load_model` builds the
network the eval driver (eval_driver.py) passes to them.
"""
import os
import time

import numpy as np
import progressbar
import torch

from dataset.eval_dataset import prefetch
from inference_core import InferenceConfig, InferenceCore, sync
from model.checkpoint import load_network
from model.eval_network import STCN
from model.precision import prepare_for_amp
from util.files import CurrentStderr
from util.image_io import write_mask
from util.peak_memory import peak_memory, peak_memory_text


def load_model(path, device, amp=False):
    """model.eval_network.STCN in eval mode on `device`, weights from `path` (any accepted
    checkpoint form, stage-0 included), in the form --amp runs fastest in (prepare_for_amp)."""
    net = STCN().to(device).eval()
    load_network(net, path)
    return prepare_for_amp(net, device, amp)


def label_tensor(mask, k):
    """Index mask uint8 [H, W] (0..K) -> one-hot probabilities float [K, 1, H, W]."""
    m = torch.from_numpy(np.array(mask, dtype=np.int64))
    return (m[None] == torch.arange(1, k + 1)[:, None, None]).float()[:, None]


def segment_video(net, video, config=None, device=None, stop=None):
    """Run one dataset Video through an InferenceCore with `config` (InferenceConfig).

    Each label propagates up to the next label (inclusive, as STCN's YouTube-VOS loop: the
    objects labeled before keep their propagated masks there) or the end. A label marked
    `complete` also resets every already labeled object it does not hold (that object is
    absent there). stop: process only the frames before this processing index (labels from
    it on are ignored); the masks before it are those of the whole run, since propagation
    only looks back. Returns
    ({processing index: uint8 [H, W] mask in original ids, at video.size}, frames segmented,
    seconds of processing (IO excluded), the core).
    """
    device = torch.device(device) if device is not None else next(net.parameters()).device
    k = len(video.object_ids)
    n = video.num_frames if stop is None else min(stop, video.num_frames)
    labels = [lab for lab in video.labels if lab.index < n]
    first = video.labels[0].index
    outputs = [i for i in (range(n) if video.outputs is None else video.outputs)
               if first <= i < n]
    sync(device)
    start = time.perf_counter()
    core = InferenceCore(net, video.images, k, config or InferenceConfig(),
                         req_frames=None if video.outputs is None else outputs, device=device)
    for j, lab in enumerate(labels):
        end = labels[j + 1].index + 1 if j + 1 < len(labels) else n
        objects = set(lab.objects)
        if lab.complete:
            objects |= core.enabled
        core.interact(label_tensor(lab.mask, k), lab.index, end, sorted(objects))
    lut = np.asarray([0] + list(video.object_ids), dtype=np.uint8)
    masks = {}
    for i in outputs:
        m = core.get_mask(i, video.size)
        if m is not None:
            masks[i] = lut[m]
    sync(device)
    return masks, core.processed, time.perf_counter() - start, core


def run_dataset(net, dataset, out_dir, config, videos=None, device=None, progress=True):
    """Segment videos `videos` (names; default all) of a test dataset with `config`
    (InferenceConfig) and write their outputs (dataset.output_frames) as
    <out_dir>/<video>/<frame>.png.

    Videos are loaded one ahead in a background thread (page-locked for a CUDA device);
    PNGs are palette images written atomically. Prints and returns the speed: frames
    segmented / processing seconds (IO excluded), then the process's peak memory
    (util.peak_memory). Returns {'videos', 'frames', 'seconds', 'fps', 'written',
    'peak_memory'} (bytes).
    """
    names = list(dataset.videos if videos is None else videos)
    frames, seconds, written = 0, 0.0, 0
    dev = torch.device(device) if device is not None else next(net.parameters()).device
    loaded = prefetch(dataset, names, pin_memory=dev.type == 'cuda')
    if progress:
        bar = progressbar.ProgressBar(max_value=len(names), prefix='videos ',
                                      fd=CurrentStderr())
        loaded = bar(loaded)
    for video in loaded:
        masks, n, secs, _ = segment_video(net, video, config, device=device)
        frames, seconds = frames + n, seconds + secs
        for i, m in masks.items():
            write_mask(os.path.join(out_dir, video.name, video.frames[i] + '.png'), m,
                       video.palette)
        written += len(masks)
    fps = frames / seconds if seconds > 0 else float('nan')
    print(f'{len(names)} videos, {frames} frames segmented in {seconds:.2f} s: '
          f'{fps:.2f} FPS (IO excluded); {written} masks written to {out_dir}; '
          f'{peak_memory_text(dev)}')
    return {'videos': len(names), 'frames': frames, 'seconds': seconds, 'fps': fps,
            'written': written, 'peak_memory': peak_memory(dev)[0]}
