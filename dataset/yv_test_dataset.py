"""YouTube-VOS valid / test, STCN's protocol (eval_youtube.py)."""
import os

from dataset.eval_dataset import EvalDataset, build_video, first_object_frame
from util.errors import UserError
from util.files import read_json, require_dir
from util.image_io import get_palette
from util.layout import (check_name, sort_frames, stem, youtube_all_frames, youtube_dirs,
                         youtube_meta)


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
