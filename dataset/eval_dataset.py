"""What every test-time dataset shares: the Video it yields, frame and mask loading, the
EvalDataset contract and prefetch. The datasets: dataset/davis_test_dataset.py,
dataset/yv_test_dataset.py, dataset/generic_test_dataset.py, phase2/passes_dataset.py.

Every dataset is indexable and yields one `Video` per item:
  images      float [T, 3, H, W], ImageNet-normalised, in processing order, working resolution
  frames      frame names without extension, in processing order
  labels      [Label(index, mask, objects, complete)] in processing order; mask uint8 [H, W]
              holds object indices 0..K (working resolution)
  object_ids  original id of object k at position k - 1 (ids may skip numbers)
  size        (H, W) of the stored frames: the output size
  palette     768 bytes for the output PNGs (the input annotation's palette)
  outputs     processing indices to write: those of the dataset's `output_frames(name)`
              (None, for a Video built by hand: every frame from the first label on)
Each dataset lists what it reads in `inputs` ([(what, path)]), for util.outputs.check_apart,
and says in `output_frames(name)` which masks it produces for a video: the frame stems of
<out_dir>/<name>/<stem>.png, what a run writes and what --resume checks.
Problems with the input (missing folders, frames or masks, a mask whose size differs from its
frame, a video named in a list but absent) raise UserError naming the file. Folders are
checked when the dataset is built; `check_videos(names)` checks videos (frame headers, masks)
before a run writes anything, and loading a video decodes its frames.
"""
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from dataset.range_transform import im_normalization
from util.errors import UserError
from util.image_io import check_frame_sizes, read_frame, read_mask
from util.layout import list_frames, list_masks, stem


DAVIS_VOID = 255


@dataclass
class Label:
    index: int                 # position in processing order
    mask: np.ndarray           # uint8 [H, W], object indices 0..K
    objects: list              # object indices (1..K) this label defines
    complete: bool = False     # a full annotation: objects it lacks are absent on this frame


@dataclass
class Video:
    name: str
    images: torch.Tensor
    frames: list
    labels: list
    object_ids: list
    size: tuple
    palette: bytes
    outputs: list = None

    @property
    def num_frames(self):
        return len(self.frames)


# ---------------------------------------------------------------------- helpers

def working_size(h, w, res):
    """(H, W) with the shorter side resized to `res` (res <= 0: as stored)."""
    if res is None or res <= 0 or min(h, w) == res:
        return h, w
    if h <= w:
        return res, int(res * w / h)
    return int(res * h / w), res


def resize_frame(frame, size):
    """STCN's resize of a normalised frame: float [3, H, W] -> [3, h, w], bicubic on the
    tensor (align_corners=False, no antialiasing: torchvision's tensor Resize of the paper's
    version; docs/method.md, "Inference")."""
    return F.interpolate(frame[None], size=tuple(size), mode='bicubic', align_corners=False,
                         antialias=False)[0]


def load_frames(folder, names, res=-1, headers_only=False):
    """Read frames -> (normalised float [T, 3, H', W'], stored size (H, W)).

    All frames must share one size. res > 0: shorter side resized to res after the
    normalisation (resize_frame). headers_only: read only the sizes; the frames tensor is then
    a 'meta' tensor (a shape without data), for checking a video without decoding it.
    """
    if headers_only:
        size = check_frame_sizes(folder, names)
        return torch.empty(len(names), 3, *working_size(*size, res), device='meta'), size
    size, out = None, None
    for i, n in enumerate(names):
        path = os.path.join(folder, n)
        img = read_frame(path)
        if size is None:
            size = img.shape[:2]
            h, w = working_size(*size, res)
            out = torch.empty(len(names), 3, h, w)
        elif img.shape[:2] != size:
            raise UserError(f'{path}: frame size {img.shape[1]}x{img.shape[0]} differs from the '
                            f'first frame of the video ({size[1]}x{size[0]})')
        frame = im_normalization(torch.from_numpy(img.copy()).permute(2, 0, 1).float().div_(255))
        out[i] = frame if (h, w) == tuple(size) else resize_frame(frame, (h, w))
    return out, tuple(int(s) for s in size)


def load_mask(path, size, work_size, binarize=False, void=None):
    """Read a label mask of a frame of `size` -> uint8 [H', W'] at the working size (nearest
    on the tensor, as STCN resizes its one-hot labels)."""
    mask = read_mask(path)
    if mask.shape != tuple(size):
        raise UserError(f'{path}: mask size {mask.shape[1]}x{mask.shape[0]} differs from its '
                        f'frame ({size[1]}x{size[0]})')
    if void is not None:
        mask = np.where(mask == void, 0, mask).astype(np.uint8)
    if binarize:
        mask = (mask > 0).astype(np.uint8)
    if tuple(work_size) != tuple(size):
        m = torch.from_numpy(np.array(mask, dtype=np.float32))[None, None]
        mask = F.interpolate(m, size=tuple(work_size), mode='nearest')[0, 0].to(
            torch.uint8).numpy()
    return mask


def index_labels(raw, object_ids):
    """Original-id masks -> object-index masks (0..K) given object_ids."""
    lut = np.zeros(256, dtype=np.uint8)
    for k, oid in enumerate(object_ids):
        lut[oid] = k + 1
    return [lut[m] for m in raw]


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


def present(mask):
    return [int(i) for i in np.unique(mask) if i != 0]


def build_video(name, images, frames, size, palette, raw_labels, complete, outputs=None):
    """raw_labels: [(processing index, uint8 mask of original ids)] -> Video (ids -> 1..K)."""
    raw_labels = sorted(raw_labels, key=lambda x: x[0])
    object_ids = sorted(set(i for _, m in raw_labels for i in present(m)))
    masks = index_labels([m for _, m in raw_labels], object_ids)
    labels = [Label(idx, m, present(m), complete) for (idx, _), m in zip(raw_labels, masks)]
    return Video(name, images, list(frames), labels, object_ids, size, palette, outputs)


class EvalDataset(torch.utils.data.Dataset):
    """What every test dataset provides to eval_driver: `videos` (names, in order), `inputs`,
    `image_dir` (<image_dir>/<video>/ frames), `load(name)` -> Video (outputs:
    `self.output_indices(name, stems)`) and `output_frames(name)`."""
    videos = ()
    headers_only = False         # load_frames reads sizes only (check_videos)

    def __len__(self):
        return len(self.videos)

    def check_videos(self, names=None):
        """Check videos (default: all) as loading them would (frames present, of one size and
        a readable mode; labels present, readable, of their frame's size, holding an object),
        decoding only the masks: a run then fails before its first output, not at a late
        video."""
        self.headers_only = True
        try:
            for name in self.videos if names is None else names:
                self.load(name)
        finally:
            self.headers_only = False

    def __getitem__(self, i):
        return self.load(self.videos[i])

    def output_frames(self, name):
        """Frame stems (processing order) of the masks written for video `name`, as
        <out_dir>/<name>/<stem>.png; None when that cannot be told without loading the video
        (loading it then reports why). `load` gives the Video these outputs."""
        raise NotImplementedError

    def output_indices(self, name, stems):
        """Positions in `stems` (the loaded video's frames) of output_frames(name)."""
        pos = {s: i for i, s in enumerate(stems)}
        return [pos[s] for s in self.output_frames(name)]

    def frame_stems(self, name):
        """Stems of the frames of <image_dir>/<name>, in time order."""
        return [stem(n) for n in list_frames(os.path.join(self.image_dir, name))]

    def load_sparse(self, name):
        """Frames of <image_dir>/<name> and the labels in <mask_dir>/<name> (any subset of
        frames). Returns (stems, images [T, 3, H, W], stored size (h, w), label PNG names,
        [(frame index, mask uint8 [H, W])] for the labels holding an object)."""
        folder = os.path.join(self.image_dir, name)
        names = list_frames(folder)
        stems = [stem(n) for n in names]
        pos = {s: i for i, s in enumerate(stems)}
        images, size = load_frames(folder, names, self.res, self.headers_only)
        pngs = list_masks(os.path.join(self.mask_dir, name))
        raw = []
        for png in pngs:
            path = os.path.join(self.mask_dir, name, png)
            if stem(png) not in pos:
                raise UserError(f'{path}: labeled frame has no image in {folder}')
            mask = load_mask(path, size, images.shape[-2:])
            if mask.any():
                raw.append((pos[stem(png)], mask))
        if not raw:
            raise UserError(f'{os.path.join(self.mask_dir, name)}: no labeled frame with an '
                            'object')
        return stems, images, size, pngs, raw


def prefetch(dataset, names=None, pin_memory=False, load=None):
    """Iterate over videos `names` (default: all) of a dataset, loading the next one in a
    background thread.

    pin_memory: also page-lock each video's frames there (CUDA only), so that copying a
    frame to the GPU can overlap with computation (non_blocking copies).
    load(name, pin_memory): what to yield for a video instead of the dataset's Video.
    """
    names = list(dataset.videos if names is None else names)
    if not names:
        return
    pin_memory = pin_memory and torch.cuda.is_available()

    def default_load(name, pin):
        video = dataset.load(name)
        if pin:
            video.images = video.images.pin_memory()
        return video
    load = load or default_load
    with ThreadPoolExecutor(max_workers=1) as pool:
        nxt = pool.submit(load, names[0], pin_memory)
        for i in range(len(names)):
            cur = nxt.result()
            if i + 1 < len(names):
                nxt = pool.submit(load, names[i + 1], pin_memory)
            yield cur
