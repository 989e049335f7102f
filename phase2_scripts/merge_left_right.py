"""Merge the four intermediate-inference passes into one pseudo-label bank (phase2.merge).

  cd phase2_scripts && python merge_left_right.py           # the original README's merge
  python phase2_scripts/merge_left_right.py [--davis]       # the same folders, from anywhere
  python phase2_scripts/merge_left_right.py --gt_dir G --left L --leftsecgt LS \
      --right R --rightsecgt RS --out OUT [--frames_dir JPEGImages] [--videos v1 v2]

Without folder flags it reads and writes the original's folders beside the checkout, as the
original's script names them from phase2_scripts/ (../../YouTube, ../../DAVIS,
../../vos_phase2): the YouTube-VOS passes vos_phase2/phase1_{left,leftsecgt,right,rightsecgt}_480p
with the sparse labels YouTube/phase2/yv_gt_480p, merged into
vos_phase2/phase1_merge_480p/Annotations/; with --davis the passes phase1_*_davis, the labels
DAVIS/2017/phase2/davis_gt and the bank phase1_merge_davis. The merge rule is in
docs/method.md. Nothing is written if any input is wrong; each video is written into a
temporary folder and renamed into place.
"""
if __name__ == '__main__' and not __package__:    # run as a file: rerun as the module
    import as_module                                # the file beside this one
    as_module.rerun(__file__)

import argparse  # noqa: E402
import os  # noqa: E402

from phase2.merge import PASS_NAMES, merge  # noqa: E402
from util.errors import run_main  # noqa: E402


# the folder holding the checkout (../.. from phase2_scripts/) and the original's folder
# names in it: dataset -> (sparse label folder, suffix of the pass and bank folders)
BESIDE = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, os.pardir)
ORIGINAL_FOLDERS = {'youtube': (os.path.join('YouTube', 'phase2', 'yv_gt_480p'), '480p'),
                    'davis': (os.path.join('DAVIS', '2017', 'phase2', 'davis_gt'), 'davis')}


def original_folders(davis):
    """{flag: path} of the original's default folders (paths relative to the current folder)."""
    sparse, suffix = ORIGINAL_FOLDERS['davis' if davis else 'youtube']
    where = {'gt_dir': sparse, 'out': os.path.join('vos_phase2', f'phase1_merge_{suffix}')}
    where.update({n: os.path.join('vos_phase2', f'phase1_{n}_{suffix}') for n in PASS_NAMES})
    return {k: os.path.relpath(os.path.join(BESIDE, v)) for k, v in where.items()}


def summary_line(s):
    per = ', '.join(f'{k} {v}' for k, v in s['sources'].items())
    return f"merged {s['videos']} videos, {s['frames']} frames into {s['out']} ({per})"


def get_parser():
    p = argparse.ArgumentParser(description='Merge the four intermediate-inference passes '
                                            'into one pseudo-label bank.')
    p.add_argument('--davis', action='store_true',
                   help='default folders of DAVIS (the original edits commented paths): passes '
                        'phase1_*_davis, labels DAVIS/2017/phase2/davis_gt, bank '
                        'phase1_merge_davis')
    p.add_argument('--gt_dir', default=None,
                   help='sparse label folder <video>/<1 or 2 labeled pngs> (default: '
                        '../../YouTube/phase2/yv_gt_480p as seen from phase2_scripts/)')
    for name in PASS_NAMES:
        p.add_argument(f'--{name}', default=None,
                       help=f'{name} pass folder (default: ../../vos_phase2/phase1_{name}_480p '
                            'as seen from phase2_scripts/; its Annotations/ when it has one)')
    p.add_argument('--out', default=None,
                   help='bank folder; videos go to <out>/Annotations/ (default: '
                        '../../vos_phase2/phase1_merge_480p as seen from phase2_scripts/)')
    p.add_argument('--frames_dir', default=None,
                   help='JPEGImages folder giving each video\'s full frame list (default: '
                        'train_480p/JPEGImages or 2017/trainval/JPEGImages/480p beside the '
                        'phase2/ folder of --gt_dir)')
    p.add_argument('--videos', nargs='+', default=None, help='merge only these videos')
    p.add_argument('--workers', type=int, default=4, help='parallel video writers')
    p.add_argument('--debug', action='store_true', help='full traceback on errors')
    return p


def main(argv=None):
    args = get_parser().parse_args(argv)
    for flag, path in original_folders(args.davis).items():
        if getattr(args, flag) is None:
            setattr(args, flag, path)
    s = merge(args.gt_dir, args.left, args.leftsecgt, args.right, args.rightsecgt, args.out,
              frames_dir=args.frames_dir, videos=args.videos, workers=args.workers)
    print(summary_line(s))
    return s


if __name__ == '__main__':
    run_main(main)
