"""Generic folders: frames and the labels of the frames where objects first appear
(eval_generic.py).
"""
import os

from dataset.eval_dataset import EvalDataset, build_video, first_object_frame
from util.errors import UserError
from util.files import require_dir
from util.image_io import get_palette
from util.layout import generic_dirs, list_videos


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
