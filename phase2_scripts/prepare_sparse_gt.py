"""Build the sparse label folder of a two-shot split: only the labeled frames' PNGs per video.

    python phase2_scripts/prepare_sparse_gt.py --annotations DIR --split split.json --out OUT

For every video of the split JSON ({video: ["00030.jpg", "00065.jpg"]}) the masks
DIR/<video>/00030.png and 00065.png are copied byte for byte (palette kept) to OUT/<video>/,
each video folder published whole (util.files.publish_folder: never one label of two).
Everything is checked before anything is written: a video or frame named in the JSON but
absent under DIR, a labeled mask that holds no object, an OUT that cannot be written, or an
OUT/<video> folder already holding other PNGs, is an error (one line naming the file, exit 2).
"""
if __name__ == '__main__' and not __package__:    # run as a file: rerun as the module
    import as_module                                # the file beside this one
    as_module.rerun(__file__)

import argparse  # noqa: E402

from util.errors import run_main  # noqa: E402
from dataset.two_shot_split import prepare_sparse_gt  # noqa: E402


def main(argv):
    p = argparse.ArgumentParser(description='Copy the labeled frames of a two-shot split.')
    p.add_argument('--annotations', required=True, help='folder of <video>/<frame>.png masks')
    p.add_argument('--split', required=True, help='split JSON {video: ["00030.jpg", ...]}')
    p.add_argument('--out', required=True, help='sparse label folder to fill')
    p.add_argument('--debug', action='store_true', help='full tracebacks on errors')
    a = p.parse_args(argv)
    n = prepare_sparse_gt(a.annotations, a.split, a.out)
    print(f'{a.out}: wrote {n} masks')
    return 0


if __name__ == '__main__':
    run_main(main)
