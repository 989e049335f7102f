"""DAVIS 2017 val / test-dev and DAVIS 2016 val (eval_davis.py, eval_davis_2016.py)."""
import os

from dataset.eval_dataset import DAVIS_VOID, EvalDataset, build_video, load_frames, load_mask
from util.errors import UserError
from util.files import read_list, require_dir
from util.image_io import get_palette
from util.layout import (davis_2017_dir, davis_dirs, davis_imageset, davis_part, davis_trainval,
                         list_frames, stem)


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
