"""Training triplets from videos: full supervision, two-shot (phase 1) and phase 2
(docs/method.md, "Sampling").

Three modes, chosen by the constructor arguments:

- full supervision (two_shot and pseudo_root None): STCN's triplets over all frames
  (ordinary_triplet: clipped gaps of up to max_jump+1, reversed in time with p=0.5), masks
  from gt_root;
- two-shot (two_shot = {video: ["00030.jpg", ...]}): only the listed frames' masks are ever
  read. semi=False (warm-up): ordinary triplets over the list of the labeled frames.
  semi=True: a triplet starts at a labeled frame and goes forward (or backward, p=reverse_p)
  with gaps 1..max_jump+1 over all frames, clipped at the video's end; with p=force_both_p it
  holds both labeled frames; unlabeled frames get cls_gt -1 (ignored) and `labeled` False;
- phase 2 (pseudo_root = merged pseudo-label bank): ordinary triplets over the frames that
  have a bank PNG, masks from the bank; `labeled_frames` marks the true labels.

Each sample tries up to MAX_TRIALS draws (frames and augmentation) until frame 0 shows an
object; a semi sample keeps its labeled pair and direction over the trials.

Item (C = crop_size):
    rgb      float [3, 3, C, C]  ImageNet-normalised frames
    gt       float [3, 1, C, C]  target object (0/1)
    sec_gt   float [3, 1, C, C]  second object (0/1; zeros when there is none)
    cls_gt   long  [3, C, C]     0 background, 1 target, 2 second, -1 ignored (unlabeled)
    selector float [2]           [1, 1 if a second object exists else 0]
    labeled  bool  [3]           frame has a true (or, phase 2, bank) label
    info     dict  name (video), frames (3 image names), target_id, second_id (0 if none)

All randomness comes from torch's global RNG (see dataset/reseed.py).
"""
import os

import numpy as np
import torch
from torch.utils.data import Dataset

from dataset import augment as A
from util.errors import UserError
from util.image_io import check_frame_sizes, read_frame, read_mask
from util.layout import MASK_EXT, check_unique, image_files, list_videos, stem

MAX_TRIALS = 5                 # STCN: resample up to 5 times until a target is visible
BL_MIN_AREA = 100              # BL30K: an object needs this many pixels in a 384 crop


def _list_dirs(root):
    return list_videos(root)


def _list_images(folder):
    """Frame names in time order (util.layout); a frame with two files is an error."""
    return check_unique(folder, image_files(folder))


def _load_two_shot(two_shot):
    """dict {video: [names]} or a path to the split JSON -> ({video: set of frame stems},
    how errors name the split)."""
    name = 'the two-shot split'
    if isinstance(two_shot, (str, os.PathLike)):
        from dataset.two_shot_split import load_split
        name = str(two_shot)
        two_shot = load_split(name, max_frames=10 ** 6)
    if not isinstance(two_shot, dict):
        raise TypeError('two_shot / labeled_frames must be a dict {video: [frame names]}')
    return {v: {stem(n) for n in names} for v, names in two_shot.items()}, name


def _check_split(split, split_name, im_root):
    """Every video and frame a split names must exist under im_root (UserError naming the
    split otherwise). Returns {video: sorted image names}."""
    frames = {}
    for v in sorted(split):
        folder = os.path.join(im_root, v)
        if not os.path.isdir(folder):
            raise UserError(f'{split_name}: video {v!r} has no frame folder {folder}')
        frames[v] = _list_images(folder)
        stems = {stem(f) for f in frames[v]}
        for s in sorted(split[v]):
            if s not in stems:
                raise UserError(f'{split_name}: video {v!r}: labeled frame {s!r} has no image '
                                f'in {folder}')
    return frames


def _randint(m):
    """Uniform on 0..m-1."""
    return A.randint(0, m - 1)


def ordinary_triplet(n, max_jump):
    """STCN's triplet over a list of n entries: clipped gaps, reversed in time with p=0.5.

    j = min(n, max_jump) (at least 1), randint(m) uniform on 0..m-1: start = randint(n - j + 1);
    f1 = start + randint(j + 1) + 1 clipped to min(n - j, n - 1); f2 = f1 + randint(j + 1) + 1
    clipped to min(n - j // 2, n - 1).
    Clipping can repeat an entry: on the two-entry list of a video's labeled frames [a, b]
    this gives [a, a, b] / [b, a, a] for j = 2 and [a, b, b], [b, b, b], [b, b, a] for j = 1.
    """
    j = min(n, max(1, max_jump))
    start = _randint(n - j + 1)
    f1 = min(start + _randint(j + 1) + 1, n - j, n - 1)
    f2 = min(f1 + _randint(j + 1) + 1, n - j // 2, n - 1)
    idx = [start, f1, f2]
    return idx[::-1] if A.rand() < 0.5 else idx


def semi_pair(lab, reverse_p):
    """Once per sample: the two labeled frames a semi triplet may use (two drawn at random when
    there are more) and the time direction (backward with p=reverse_p).

    Returns (labels in the order the chosen direction meets them, backward)."""
    lab = sorted(set(lab))
    if len(lab) > 2:
        lab = sorted(lab[k] for k in torch.randperm(len(lab))[:2].tolist())
    backward = A.rand() < reverse_p
    return (lab[::-1] if backward else lab), backward


def semi_triplet(n, pair, backward, max_jump, force_both_p):
    """Semi-supervised triplet: one of the labels in `pair` starts it, the two later frames
    are 1..j+1 further on in the direction (j = min(n, max_jump), at least 1), each clipped at
    the video's end there (so [s, s, s] when s is that end). With p=force_both_p a triplet
    holding fewer than two of the pair's frames gets the other label, in the order of the
    direction: [first, s, f1] when s is the second label met, else [s, f1, second label], or
    [s, second label, f1] when f1 already lies beyond it. Returns video frame indices."""
    pos = [n - 1 - k if backward else k for k in pair]          # positions along the direction
    j = min(n, max(1, max_jump))
    which = _randint(len(pos))
    s = pos[which]
    f1 = min(s + _randint(j + 1) + 1, n - 1)
    f2 = min(f1 + _randint(j + 1) + 1, n - 1)
    idx = [s, f1, f2]
    if len(pos) == 2 and A.rand() < force_both_p and sum(k in pos for k in idx) < 2:
        if which == 1:
            idx = [pos[0], s, f1]
        elif f1 > pos[1]:
            idx = [s, pos[1], f1]
        else:
            idx = [s, f1, pos[1]]
    return [n - 1 - k if backward else k for k in idx]


class VOSDataset(Dataset):
    """Triplets of frames from a folder of videos; see the module docstring for the modes."""

    def __init__(self, im_root, gt_root, max_jump, is_bl=False, subset=None, two_shot=None,
                 semi=False, pseudo_root=None, labeled_frames=None, crop_size=384,
                 force_both_p=0.5, reverse_p=0.5):
        self.im_root, self.gt_root = str(im_root), None if gt_root is None else str(gt_root)
        self.max_jump = int(max_jump)          # the trainer's skip curriculum changes this
        self.is_bl = is_bl
        self.semi = semi                       # settable: False = labeled-only triplets
        self.crop_size = int(crop_size)
        self.force_both_p, self.reverse_p = force_both_p, reverse_p
        self.pseudo_root = None if pseudo_root is None else str(pseudo_root)
        self.crop_scale = (0.25, 1.0) if is_bl else (0.36, 1.0)
        self.min_area = max(1, int(round(BL_MIN_AREA * (self.crop_size / 384) ** 2))) \
            if is_bl else 1
        if not os.path.isdir(self.im_root):
            raise UserError(f'{self.im_root}: image folder not found')
        subset = None if subset is None else set(subset)

        self.videos = []       # video names
        self.frames = {}       # video -> sorted image file names usable in triplets
        self.labeled = {}      # video -> sorted indices (into frames) of labeled frames
        self.mask_dir = {}     # video -> folder holding its masks
        self.split_name = None  # how errors name the two-shot split (its path when given one)
        if self.pseudo_root is not None:
            self.mode = 'phase2'
            self._init_phase2(subset, labeled_frames if labeled_frames is not None else two_shot)
        elif two_shot is not None:
            self.mode = 'two_shot'
            self._init_two_shot(subset, two_shot)
        else:
            self.mode = 'full'
            self._init_full(subset)
        if not self.videos:
            raise UserError(f'{self.im_root}: no usable videos found ({self.mode} mode)')

    # ------------------------------------------------------------ listing
    def _require_gt_root(self):
        if self.gt_root is None or not os.path.isdir(self.gt_root):
            raise UserError(f'{self.gt_root}: annotation folder not found')

    def _init_full(self, subset):
        self._require_gt_root()
        for v in _list_dirs(self.im_root):
            if subset is not None and v not in subset:
                continue
            frames = _list_images(os.path.join(self.im_root, v))
            if frames:
                masks = os.path.join(self.gt_root, v)
                if not os.path.isdir(masks):
                    raise UserError(f'{masks}: mask folder of video {v!r} not found')
                self._add(v, frames, list(range(len(frames))), masks)

    def _init_two_shot(self, subset, two_shot):
        self._require_gt_root()
        split, name = _load_two_shot(two_shot)
        self.split_name = name
        listing = _check_split(split, name, self.im_root)
        for v in sorted(split):
            if subset is not None and v not in subset:
                continue
            frames = listing[v]
            stems = [stem(f) for f in frames]
            lab = []
            for s in sorted(split[v]):
                png = os.path.join(self.gt_root, v, s + '.png')
                if not os.path.isfile(png):
                    raise UserError(f'{name}: video {v!r}: labeled frame {s!r} has no mask '
                                    f'{png}')
                lab.append(stems.index(s))
            self._add(v, frames, lab, os.path.join(self.gt_root, v))

    def _init_phase2(self, subset, labeled_frames):
        if not os.path.isdir(self.pseudo_root):
            raise UserError(f'{self.pseudo_root}: pseudo-label bank not found')
        true = {}
        if labeled_frames is not None:
            true, name = _load_two_shot(labeled_frames)
            _check_split(true, name, self.im_root)
        for v in _list_dirs(self.pseudo_root):
            if subset is not None and v not in subset:
                continue
            bank = os.path.join(self.pseudo_root, v)
            have = {stem(f) for f in image_files(bank, (MASK_EXT,))}
            im_dir = os.path.join(self.im_root, v)
            if not have or not os.path.isdir(im_dir):
                continue
            frames = [f for f in _list_images(im_dir) if stem(f) in have]
            lab = [k for k, f in enumerate(frames) if stem(f) in true.get(v, ())]
            if frames:
                self._add(v, frames, lab, bank)

    def _add(self, video, frames, labeled, mask_dir):
        check_frame_sizes(os.path.join(self.im_root, video), frames)   # headers only
        self.videos.append(video)
        self.frames[video] = frames
        self.labeled[video] = labeled
        self.mask_dir[video] = mask_dir

    def __len__(self):
        return len(self.videos)

    # ------------------------------------------------------------ sampling
    def _sample(self, video, semi):
        """Frame indices [3] and whether each frame's mask is to be read [3]; `semi` is the
        sample's semi_pair (semi mode) or None."""
        n, lab = len(self.frames[video]), self.labeled[video]
        if self.mode == 'two_shot':
            if semi is None:                    # warm-up: the rule over the labeled-frame list
                return [lab[k] for k in ordinary_triplet(len(lab), self.max_jump)], [True] * 3
            idx = semi_triplet(n, *semi, self.max_jump, self.force_both_p)
            return idx, [k in lab for k in idx]
        return ordinary_triplet(n, self.max_jump), [True] * 3

    # ------------------------------------------------------------ loading
    def _read(self, video, name, with_mask):
        im = read_frame(os.path.join(self.im_root, video, name))
        if not with_mask:
            return im, None
        path = os.path.join(self.mask_dir[video], stem(name) + '.png')
        mask = read_mask(path)
        if mask.shape != im.shape[:2]:
            raise UserError(f'{path}: mask size {mask.shape[1]}x{mask.shape[0]} differs from '
                            f'its frame ({im.shape[1]}x{im.shape[0]})')
        if self.mode == 'two_shot' and not mask.any():
            raise UserError(f'{path}: labeled frame of {self.split_name} holds no object '
                            '(a two-shot split should name frames that show the objects)')
        return im, mask

    def _augment(self, ims, masks):
        """Shared (flip, crop, jitter, gray) and per-frame (affine, jitter) augmentation.

        ims: list of uint8 [H, W, 3]; masks: list of uint8 [H, W] or None.
        Returns float [3, 3, C, C] and a list of uint8 [C, C] (or None).
        """
        c = self.crop_size
        first = A.to_pil_image(ims[0])
        flip = A.rand() < 0.5
        box = A.sample_crop(first, self.crop_scale)
        jitter = A.sample_jitter(0.1, 0.03, 0.03, 0)
        gray = A.rand() < 0.05
        out_ims, out_masks = [], []
        for im, mask in zip(ims, masks):
            im = A.to_pil_image(im)
            mask = None if mask is None else A.to_pil_mask(mask)
            if flip:
                im = A.hflip(im)
                mask = None if mask is None else A.hflip(mask)
            im = A.apply_crop(im, box, c, is_mask=False)
            mask = None if mask is None else A.apply_crop(mask, box, c, is_mask=True)
            im = A.apply_jitter(im, jitter)
            if gray:
                im = A.to_gray(im)
            aff = A.sample_affine((c, c), degrees=15, shear=10)
            im = A.apply_affine(im, aff, is_mask=False)
            mask = None if mask is None else A.apply_affine(mask, aff, is_mask=True)
            im = A.apply_jitter(im, A.sample_jitter(0.01, 0.01, 0.01, 0))
            out_ims.append(A.to_normalized_tensor(im))
            out_masks.append(None if mask is None else np.asarray(mask, dtype=np.uint8))
        return torch.stack(out_ims, 0), out_masks

    def _pick_objects(self, mask0):
        """Target and second object ids visible in frame 0 (0 when none)."""
        ids, counts = np.unique(mask0, return_counts=True)
        cand = [int(i) for i, k in zip(ids, counts) if i != 0 and k >= self.min_area]
        if not cand:
            return 0, 0
        target = A.choice(cand)
        rest = [i for i in cand if i != target]
        return target, (A.choice(rest) if rest else 0)

    def __getitem__(self, idx):
        video = self.videos[idx]
        names = self.frames[video]
        semi = semi_pair(self.labeled[video], self.reverse_p) \
            if self.mode == 'two_shot' and self.semi else None
        for _ in range(MAX_TRIALS):
            fidx, with_mask = self._sample(video, semi)
            cache = {}
            for k, m in zip(fidx, with_mask):
                if k not in cache or (m and cache[k][1] is None):
                    cache[k] = self._read(video, names[k], m)
            ims = [cache[k][0] for k in fidx]
            masks = [cache[k][1] if m else None for k, m in zip(fidx, with_mask)]
            rgb, masks = self._augment(ims, masks)
            target, second = self._pick_objects(masks[0])
            if target:
                break

        c = self.crop_size
        gt = torch.zeros(3, 1, c, c)
        sec_gt = torch.zeros(3, 1, c, c)
        cls_gt = torch.full((3, c, c), -1, dtype=torch.long)
        for t, mask in enumerate(masks):
            if mask is None:
                continue                               # unlabeled: ignored everywhere
            m = torch.from_numpy(mask.astype(np.int64))
            tar = (m == target) if target else torch.zeros_like(m, dtype=torch.bool)
            sec = (m == second) if second else torch.zeros_like(m, dtype=torch.bool)
            gt[t, 0] = tar.float()
            sec_gt[t, 0] = sec.float()
            cls = torch.zeros(c, c, dtype=torch.long)
            cls[tar] = 1
            cls[sec] = 2
            cls_gt[t] = cls
        if self.mode == 'phase2':
            labeled = [k in self.labeled[video] for k in fidx]
        else:
            labeled = list(with_mask)
        return {
            'rgb': rgb,
            'gt': gt,
            'sec_gt': sec_gt,
            'cls_gt': cls_gt,
            'selector': torch.tensor([1.0, 1.0 if second else 0.0]),
            'labeled': torch.tensor(labeled, dtype=torch.bool),
            'info': {'name': video, 'frames': [names[k] for k in fidx],
                     'target_id': int(target), 'second_id': int(second)},
        }
