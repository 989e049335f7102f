"""Merge the four intermediate-inference passes into one pseudo-label bank (phase2.merge).

  python phase2_scripts/merge_left_right.py --gt_dir G --left L --leftsecgt LS \
      --right R --rightsecgt RS --out OUT [--frames_dir JPEGImages] [--videos v1 v2]

The merge rule is in docs/method.md. Nothing is written if any input is wrong; each video is
written into a temporary folder and renamed into place.
"""
if __name__ == '__main__' and not __package__:    # run as a file: rerun as the module
    import as_module                                # the file beside this one
    as_module.rerun(__file__)

import argparse  # noqa: E402

from phase2.merge import merge  # noqa: E402
from util.errors import run_main  # noqa: E402


def summary_line(s):
    per = ', '.join(f'{k} {v}' for k, v in s['sources'].items())
    return f"merged {s['videos']} videos, {s['frames']} frames into {s['out']} ({per})"


def get_parser():
    p = argparse.ArgumentParser(description='Merge the four intermediate-inference passes '
                                            'into one pseudo-label bank.')
    p.add_argument('--gt_dir', default='../YouTube/phase2/yv_gt_480p',
                   help='sparse label folder: <video>/<1 or 2 labeled pngs>')
    p.add_argument('--left', default='../vos_phase2/phase1_left_480p')
    p.add_argument('--leftsecgt', default='../vos_phase2/phase1_leftsecgt_480p')
    p.add_argument('--right', default='../vos_phase2/phase1_right_480p')
    p.add_argument('--rightsecgt', default='../vos_phase2/phase1_rightsecgt_480p')
    p.add_argument('--out', default='../vos_phase2/phase1_merge_480p')
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
    s = merge(args.gt_dir, args.left, args.leftsecgt, args.right, args.rightsecgt, args.out,
              frames_dir=args.frames_dir, videos=args.videos, workers=args.workers)
    print(summary_line(s))
    return s


if __name__ == '__main__':
    run_main(main)
