"""The pseudo-label bank straight from the network: the four intermediate passes run only as
far as the merge uses them (`eval_youtube_bank.py`).

The merge (phase2/merge.py, docs/method.md) keeps, for labeled frames a < b, `rightsecgt` before
a, `left` up to the middle of (a, b), `right` after it, `leftsecgt` after b. Propagation only
looks back, so every pass can stop after the last frame the merge takes from it: `left`
stops at the middle instead of running to the end, `right` at the middle instead of the
first frame. All four passes then segment about T frames of a T-frame video instead of
about 2T, and the bank is byte for byte the one that the four full passes and the merge
write (tests/phase2/test_bank.py).
"""
import os
import shutil

import torch

from dataset.eval_dataset import prefetch
from phase2.merge import PASS_NAMES, source_plan
from phase2.passes_dataset import IntermediateDataset
from util.errors import UserError
from util.files import CurrentStderr, publish_folder
from util.image_io import write_mask
from util.layout import stem
from util.peak_memory import peak_memory, peak_memory_text
from video_runner import segment_video

# pass -> (reverse, only_sec_gt), as eval_youtube_phase2.py's --reverse / --only_sec_gt
PASS_FLAGS = {'left': (False, False), 'leftsecgt': (False, True),
              'right': (True, False), 'rightsecgt': (True, True)}


class BankDataset(IntermediateDataset):
    """The videos of an intermediate inference whose output is the bank: every frame (time
    order), each from its labeled PNG or from the pass the merge takes it from. `load` gives
    the `left` pass (what check_videos checks); run_bank reads the four at once."""

    def output_frames(self, name):
        """Every frame."""
        return self.frame_stems(name)


def check_label_count(label_files, video):
    """The merge rule needs 1 or 2 labeled frames per video (UserError naming the folder)."""
    n = len({stem(os.path.basename(p)) for p in label_files})
    if n not in (1, 2):
        raise UserError(f'{os.path.dirname(label_files[0])}: video {video!r} has {n} labeled '
                        'frames; the bank needs 1 or 2')


def labeled_positions(stems, label_files, video):
    """{time position: label path} of a video's labeled frames (1 or 2)."""
    check_label_count(label_files, video)
    pos = {s: i for i, s in enumerate(stems)}
    return {pos[stem(os.path.basename(p))]: p for p in label_files}


def bank_video(net, videos, label_files, config, device=None):
    """One video's bank. videos: {pass name: Video} (as IntermediateDataset.load_passes
    makes them; `left` has the frames in time order); label_files: its labeled PNGs.
    config: the InferenceConfig of every pass.

    Returns ({frame stem: ('gt', label path) or (pass, uint8 mask [H, W], palette)},
    frames segmented, processing seconds, frames the four full passes would segment).
    """
    stems = videos['left'].frames
    t = len(stems)
    labeled = labeled_positions(stems, label_files, videos['left'].name)
    plan = source_plan(t, sorted(labeled))
    out = {stems[i]: ('gt', p) for i, p in labeled.items()}
    processed, seconds, full = 0, 0.0, 0
    for name in PASS_NAMES:
        video = videos[name]
        full += t - video.labels[0].index          # a whole pass: its first label to the end
        need = [i for i, src in enumerate(plan) if src == name]     # time positions
        if not need:
            continue
        reverse = PASS_FLAGS[name][0]
        index = [t - 1 - i if reverse else i for i in need]         # processing positions
        masks, n, secs, _ = segment_video(net, video, config, device=device,
                                        stop=max(index) + 1)
        processed, seconds = processed + n, seconds + secs
        for i, j in zip(need, index):
            out[stems[i]] = (name, masks[j], video.palette)
    return out, processed, seconds, full


def write_bank_video(out_dir, name, frames):
    """Write one video's bank atomically: <out_dir>/<name>/<frame>.png (out_dir: the bank's
    Annotations folder, util.layout.bank_output)."""
    def fill(tmp):
        for s, item in frames.items():
            if item[0] == 'gt':
                shutil.copyfile(item[1], tmp / f'{s}.png')
            else:
                write_mask(tmp / f'{s}.png', item[1], item[2])
    publish_folder(os.path.join(out_dir, name), fill)


def run_bank(net, dataset, out_dir, config, videos=None, device=None, progress=True):
    """Write the bank of videos `videos` (names; default all) of a BankDataset, segmented with
    `config` (InferenceConfig), to
    <out_dir>/<video>/ (the frames of dataset.output_frames; out_dir: the bank's Annotations
    folder).

    Videos are loaded one ahead in a background thread (frames read once for all four
    passes). Prints and returns the speed as run_dataset does, plus the frames the four full
    passes would have segmented. Returns {'videos', 'frames', 'seconds', 'fps', 'written',
    'full_pass_frames', 'peak_memory'}.
    """
    names = list(dataset.videos if videos is None else videos)
    for v in names:                               # before any work
        check_label_count(dataset.label_files[v], v)
    dev = torch.device(device) if device is not None else next(net.parameters()).device
    flags = [PASS_FLAGS[name] for name in PASS_NAMES]
    loaded = prefetch(dataset, names, pin_memory=dev.type == 'cuda',
                      load=lambda name, pin: dict(zip(PASS_NAMES, dataset.load_passes(
                          name, flags, pin_memory=pin))))
    if progress:
        import progressbar
        loaded = progressbar.ProgressBar(max_value=len(names), prefix='videos ',
                                         fd=CurrentStderr())(loaded)
    frames, seconds, written, full = 0, 0.0, 0, 0
    for passes in loaded:
        name = passes['left'].name
        bank, n, secs, f = bank_video(net, passes, dataset.label_files[name], config,
                                      device=device)
        bank = {s: bank[s] for s in dataset.output_frames(name)}
        write_bank_video(out_dir, name, bank)
        frames, seconds, written, full = frames + n, seconds + secs, written + len(bank), full + f
    fps = frames / seconds if seconds > 0 else float('nan')
    print(f'{len(names)} videos, {frames} frames segmented in {seconds:.2f} s: {fps:.2f} FPS '
          f'(IO excluded; the four full passes segment {full}); {written} masks written to '
          f'{out_dir}; {peak_memory_text(dev)}')
    return {'videos': len(names), 'frames': frames, 'seconds': seconds, 'fps': fps,
            'written': written, 'full_pass_frames': full, 'peak_memory': peak_memory(dev)[0]}
