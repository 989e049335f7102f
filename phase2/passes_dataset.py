"""The dataset of the intermediate inference of two-shot phase 2 (eval_youtube_phase2.py;
phase2/bank.py's BankDataset extends it).
"""
import os

from dataset.eval_dataset import EvalDataset, build_video, load_frames, load_mask
from util.errors import UserError
from util.files import require_dir
from util.image_io import get_palette
from util.layout import list_frames, list_masks, list_videos, stem


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
            from dataset.two_shot_split import load_split
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
