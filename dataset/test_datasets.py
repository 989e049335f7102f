"""Test-time datasets: DAVIS 2017 / 2016, YouTube-VOS, intermediate inference, generic folders.

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
from util.io import (check_frame_sizes, get_palette, read_frame, read_json, read_list, read_mask,
                     require_dir)
from util.layout import (check_name, davis_2017_dir, davis_dirs, davis_imageset, davis_part,
                         davis_trainval, generic_dirs, list_frames, list_masks, list_videos,
                         sort_frames, stem,
                         youtube_all_frames, youtube_dirs, youtube_meta)

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


# ---------------------------------------------------------------------- DAVIS

class DAVISTestDataset(EvalDataset):
    """DAVIS 2017 val / test-dev or DAVIS 2016 val, first-frame label, 480p as stored.

    2017: <davis_path>/2017/{trainval,test-dev}/{JPEGImages,Annotations}/480p/<video>/,
          ImageSets/2017/{val,test-dev}.txt  (<davis_path> may also be the 2017 folder itself)
    2016: <davis_path>/2016/{JPEGImages,Annotations}/480p/<video>/, ImageSets/2016/val.txt,
          else the list DAVIS 2017 trainval ships, <DAVIS>/2017/trainval/ImageSets/2016/val.txt
          (the one STCN reads); single object: every id > 0 becomes 1.
    """

    def __init__(self, davis_path, year=2017, split='val'):
        year, split = int(year), {'test-dev': 'testdev'}.get(split, split)
        if year not in (2016, 2017) or split not in ('val', 'testdev'):
            raise UserError(f'DAVIS {year} {split}: expected year 2016/2017 and split '
                            'val/testdev')
        if year == 2016 and split != 'val':
            raise UserError('DAVIS 2016 has only the val split')
        self.year, self.split = year, split
        sub = ('trainval' if split == 'val' else 'test-dev') if year == 2017 else ''
        set_name = 'test-dev' if split == 'testdev' else 'val'
        root = davis_part(davis_path, year, sub)
        if root is None:
            raise UserError(f'{davis_dirs(os.path.join(davis_path, str(year), sub))[0]}: DAVIS '
                            'frame folder not found (check --davis_path)')
        self.root = root
        self.image_dir, mask_dir = davis_dirs(root)
        self.mask_dir = require_dir(mask_dir, 'DAVIS annotation folder')
        self.imageset = davis_imageset(root, year, set_name)
        if year == 2016 and not os.path.isfile(self.imageset):
            shipped = davis_imageset(davis_trainval(davis_2017_dir(os.path.dirname(root))),
                                     2016, set_name)
            self.imageset = shipped if os.path.isfile(shipped) else self.imageset
        self.videos = read_list(self.imageset, 'image-set file', folder=self.image_dir)
        self.inputs = [('frame folder', self.image_dir), ('annotation folder', self.mask_dir),
                       ('image-set file', self.imageset)]

    def load(self, name):
        names = list_frames(os.path.join(self.image_dir, name))
        images, size = load_frames(os.path.join(self.image_dir, name), names,
                                   headers_only=self.headers_only)
        path = os.path.join(self.mask_dir, name, stem(names[0]) + '.png')
        mask = load_mask(path, size, images.shape[-2:], binarize=self.year == 2016,
                         void=None if self.year == 2016 else DAVIS_VOID)
        if not mask.any():
            raise UserError(f'{path}: the first-frame annotation holds no object')
        stems = [stem(n) for n in names]
        return build_video(name, images, stems, size, get_palette(path), [(0, mask)],
                           complete=True, outputs=self.output_indices(name, stems))

    def output_frames(self, name):
        """Every frame."""
        return self.frame_stems(name)

    def evaluate(self, out_dir):
        """J&F of the masks in <out_dir> against this split's annotations; the CSVs go into
        <out_dir>. DAVIS 2016 ground truth is 0/255 (255 would read as void): it is read
        binarised (every id > 0 is the one object)."""
        from util.metrics import evaluate
        return evaluate(self.root, out_dir, imageset=self.imageset, split=self.split,
                        out_dir=out_dir, binarize=self.year == 2016)


# ---------------------------------------------------------------------- YouTube-VOS

class YouTubeVOSTestDataset(EvalDataset):
    """YouTube-VOS valid/test, STCN's protocol: every frame of
    <yv_path>/all_frames/<split>_all_frames/JPEGImages/<video>/ is segmented, with the labels of
    <yv_path>/<split>/Annotations/<video>/ (where objects first appear); the frames listed in
    <yv_path>/<split>/meta.json are output (every frame with output_all), from the first label
    on. sparse_input: segment only the frames of <yv_path>/<split>/JPEGImages (every 5th).
    res: shorter side (-1: as stored).
    """

    def __init__(self, yv_path, split='valid', output_all=False, res=480, sparse_input=False):
        require_dir(os.path.join(yv_path, split), 'YouTube-VOS split folder')
        frames, masks = youtube_dirs(yv_path, split)
        self.res, self.output_all = res, output_all
        self.mask_dir = require_dir(masks, 'YouTube-VOS annotation folder')
        if sparse_input:
            self.image_dir = require_dir(frames, 'YouTube-VOS frame folder (--sparse_input)')
        else:
            self.image_dir = require_dir(youtube_all_frames(yv_path, split),
                                         'YouTube-VOS all-frames folder (every frame of the '
                                         'videos; --sparse_input segments '
                                         f'{frames} instead)')
        self.meta_path = youtube_meta(yv_path, split)
        meta = read_json(self.meta_path, 'meta.json')
        if not isinstance(meta, dict) or not isinstance(meta.get('videos'), dict):
            raise UserError(f'{self.meta_path}: not a YouTube-VOS meta.json (expected '
                            '{"videos": {video: {"objects": ...}}})')
        self.meta = meta['videos']
        if not self.meta:
            raise UserError(f'{self.meta_path}: lists no videos')
        self.videos = sorted(self.meta)
        self.inputs = [('frame folder', self.image_dir), ('annotation folder', self.mask_dir),
                       ('meta.json', self.meta_path)]
        for v in self.videos:
            check_name(v, self.meta_path)
            if not os.path.isdir(os.path.join(self.image_dir, v)):
                raise UserError(f'{self.meta_path}: video {v!r} has no frame folder '
                                f'{os.path.join(self.image_dir, v)}')

    def listed_frames(self, name):
        """Frame names (no extension) listed in meta.json for this video."""
        try:
            objs = self.meta[name]['objects']
            return set(stem(check_name(f, self.meta_path, 'frame'))
                       for o in objs.values() for f in o['frames'])
        except (KeyError, TypeError, AttributeError) as e:
            raise UserError(f'{self.meta_path}: video {name!r}: malformed entry ({e})') from e

    def output_frames(self, name):
        """The meta.json frames (every frame with output_all) from the first label on."""
        stems = self.frame_stems(name)
        first = first_object_frame(stems, os.path.join(self.mask_dir, name))
        if first is None or self.output_all:
            return None if first is None else stems[first:]
        listed = self.listed_frames(name)
        if listed - set(stems):
            return None
        return [s for s in stems[first:] if s in listed]

    def load(self, name):
        stems, images, size, pngs, raw = self.load_sparse(name)
        if not self.output_all:
            missing = sort_frames(self.listed_frames(name) - set(stems))
            if missing:
                raise UserError(f'{self.meta_path}: video {name!r}: frame {missing[0]} has no '
                                f'image in {os.path.join(self.image_dir, name)}')
        return build_video(name, images, stems, size,
                           get_palette(os.path.join(self.mask_dir, name, pngs[0])), raw,
                           complete=False, outputs=self.output_indices(name, stems))


# ---------------------------------------------------------------------- intermediate inference

class IntermediateDataset(EvalDataset):
    """Training videos with one or two labeled frames (phase-2 intermediate inference).

    image_dir: <root>/<video>/ frames (YouTube train_480p/JPEGImages or DAVIS
    2017/trainval/JPEGImages/480p). labels: a sparse label folder <labels>/<video>/<1-2 pngs>,
    or a two-frame JSON {video: ["00030.jpg", ...]} read with the masks of `annotation_dir`
    (only the listed masks are opened). reverse: frames in reversed time order.
    only_sec_gt: use only the second labeled frame met in processing order (a one-label video
    uses its label). Every frame from the first used label (processing order) on is output.
    """

    def __init__(self, image_dir, labels, annotation_dir=None, reverse=False, only_sec_gt=False,
                 res=-1, void=None):
        self.image_dir = require_dir(image_dir, 'frame folder')
        self.reverse, self.only_sec_gt, self.res, self.void = reverse, only_sec_gt, res, void
        if os.path.isdir(labels):
            self.label_files = {}
            for v in list_videos(labels):
                pngs = list_masks(os.path.join(labels, v))
                if not pngs:
                    raise UserError(f'{os.path.join(labels, v)}: no labeled PNG for this video')
                self.label_files[v] = [os.path.join(labels, v, p) for p in pngs]
        elif labels.lower().endswith('.json'):
            from util.two_shot_split import load_split
            if annotation_dir is None:
                raise UserError(f'{labels}: a split JSON needs the annotation folder')
            require_dir(annotation_dir, 'annotation folder')
            self.label_files = {v: [os.path.join(annotation_dir, v, stem(f) + '.png')
                                    for f in names]
                                for v, names in load_split(labels).items()}
        else:
            raise UserError(f'{labels}: label source not found (a sparse label folder or a '
                            'split .json)')
        self.videos = sorted(self.label_files)
        if not self.videos:
            raise UserError(f'{labels}: no videos with labels')
        self.inputs = [('frame folder', self.image_dir), ('label source', labels),
                       ('annotation folder', annotation_dir)]
        for v in self.videos:
            if not os.path.isdir(os.path.join(self.image_dir, v)):
                raise UserError(f'{labels}: video {v!r} has no frame folder '
                                f'{os.path.join(self.image_dir, v)}')

    def load(self, name):
        return self.load_passes(name, [(self.reverse, self.only_sec_gt)])[0]

    def output_frames(self, name):
        """The frames of this dataset's pass (reverse, only_sec_gt)."""
        return self.pass_frames(name, self.reverse, self.only_sec_gt)

    def pass_frames(self, name, reverse, only_sec_gt):
        """Frames written by one pass: every frame (processing order) from the first used
        label on."""
        stems = self.frame_stems(name)
        if reverse:
            stems = stems[::-1]
        pos = {s: i for i, s in enumerate(stems)}
        used = {stem(os.path.basename(p)) for p in self.label_files[name]}
        if any(s not in pos for s in used):
            return None
        used = sorted(used, key=pos.get)
        if only_sec_gt and len(used) > 1:
            used = used[1:2]
        return stems[pos[used[0]]:]

    def load_passes(self, name, passes, pin_memory=False):
        """One Video per (reverse, only_sec_gt) in `passes`, from a single read of the frames
        and labels: the four intermediate passes of a video without reading it four times.
        The forward passes share one image tensor, the reversed ones its flipped copy
        (page-locked with pin_memory)."""
        folder = os.path.join(self.image_dir, name)
        names = list_frames(folder)
        stems = {stem(n) for n in names}
        for path in self.label_files[name]:
            if stem(os.path.basename(path)) not in stems:
                raise UserError(f'{path}: labeled frame has no image in {folder}')
        read_reversed = all(reverse for reverse, _ in passes)     # read in the order used
        if read_reversed:
            names = names[::-1]
        images, size = load_frames(folder, names, self.res, self.headers_only)
        masks = {path: load_mask(path, size, images.shape[-2:], void=self.void)
                 for path in self.label_files[name]}
        ordered = {read_reversed: (images, [stem(n) for n in names])}
        videos = []
        for reverse, only_sec_gt in passes:
            if reverse not in ordered:
                ordered[reverse] = (images.flip(0), ordered[not reverse][1][::-1])
            imgs, order = ordered[reverse]
            at = {s: i for i, s in enumerate(order)}
            files = sorted(masks, key=lambda p: at[stem(os.path.basename(p))])
            if only_sec_gt and len(files) > 1:
                files = [files[1]]
            raw = [(at[stem(os.path.basename(p))], masks[p]) for p in files]
            if not any(m.any() for _, m in raw):
                raise UserError(f'{files[0]}: the labels of video {name!r} hold no object')
            outputs = [at[s] for s in self.pass_frames(name, reverse, only_sec_gt)]
            videos.append(build_video(name, imgs, order, size, get_palette(files[0]), raw,
                                      complete=True, outputs=outputs))
        if pin_memory:
            pinned = {}
            for v in videos:
                v.images = pinned.setdefault(id(v.images), v.images.pin_memory())
        return videos


# ---------------------------------------------------------------------- generic folders

class GenericTestDataset(EvalDataset):
    """<root>/JPEGImages/<video>/*.jpg|png with <root>/Annotations/<video>/ holding only the
    labeled frames (objects labeled where they first appear, YouTube-style). Outputs keep the
    annotation's palette; every frame from the first label on is written."""

    def __init__(self, data_path, res=-1):
        frames, masks = generic_dirs(data_path)
        self.image_dir = require_dir(frames, 'frame folder')
        self.mask_dir = require_dir(masks, 'annotation folder')
        self.res = res
        self.videos = list_videos(self.image_dir)
        if not self.videos:
            raise UserError(f'{self.image_dir}: no video folders')
        self.inputs = [('frame folder', self.image_dir), ('annotation folder', self.mask_dir)]
        for v in self.videos:
            require_dir(os.path.join(self.mask_dir, v), 'annotation folder of this video')

    def output_frames(self, name):
        """Every frame from the first label holding an object on."""
        stems = self.frame_stems(name)
        first = first_object_frame(stems, os.path.join(self.mask_dir, name))
        return None if first is None else stems[first:]

    def load(self, name):
        stems, images, size, pngs, raw = self.load_sparse(name)
        return build_video(name, images, stems, size,
                           get_palette(os.path.join(self.mask_dir, name, pngs[0])), raw,
                           complete=False, outputs=self.output_indices(name, stems))
