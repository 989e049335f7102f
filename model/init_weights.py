"""Write the weights of a freshly initialised (seeded) STCN as a plain state_dict.

The demo uses it as the common starting point of phase 1 and phase 2 and as the "untrained"
row of its table: `python -m model.init_weights --out init.pth --seed 0 --calibrate_bn FRAMES`.

Why --calibrate_bn: a network trained with frozen batch norm (docs/method.md) relies on the
running statistics of a pretrained backbone. Without ImageNet weights (offline), the initial
statistics (mean 0, var 1) leave activations unnormalised: they grow ~20x through the ResNet,
the decoder's sigmoids saturate, the aggregation's clamp cuts their gradient and training
collapses to background. Calibrating the statistics on a few frames (a data-dependent init,
no labels used) gives a sane starting point.
"""
import argparse
import os

import numpy as np
import torch
import torch.nn as nn

from dataset.range_transform import im_normalization
from model.network import STCN
from util.errors import UserError, run_main
from util.files import save_checkpoint
from util.image_io import read_frame
from util.layout import JPEG_EXTS, image_files


def calibration_frames(folder, limit, rng):
    """Up to `limit` frame paths drawn at random from every video folder below `folder`."""
    paths = []
    for d, dirs, _ in os.walk(folder):
        dirs[:] = sorted(x for x in dirs if not x.startswith('.'))
        paths += [os.path.join(d, f) for f in image_files(d, JPEG_EXTS)]
    if not paths:
        raise UserError(f'{folder}: no .jpg frames to calibrate batch norm on')
    idx = rng.choice(len(paths), size=min(limit, len(paths)), replace=False)
    return [paths[i] for i in sorted(idx)]


def random_masks(n, h, w, rng):
    """[n, 1, h, w] masks with one random ellipse each (value-encoder inputs)."""
    yy, xx = np.mgrid[0:h, 0:w]
    out = np.zeros((n, 1, h, w), np.float32)
    for i in range(n):
        cy, cx = rng.uniform(0.2, 0.8) * h, rng.uniform(0.2, 0.8) * w
        ry, rx = rng.uniform(0.1, 0.3) * h, rng.uniform(0.1, 0.3) * w
        out[i, 0] = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
    return torch.from_numpy(out)


@torch.no_grad()
def calibrate_batch_norm(net, frame_paths, rng, batch=8):
    """Set every BN layer's running statistics to the average over the given frames."""
    bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None                         # cumulative average over the batches
        m.train()
    for s in range(0, len(frame_paths), batch):
        frames = torch.stack([im_normalization(torch.from_numpy(read_frame(p).copy()).permute(2, 0, 1)
                                               .float() / 255) for p in frame_paths[s:s + batch]])
        b, _, h, w = frames.shape
        h16, w16 = h - h % 16, w - w % 16
        frames = frames[:, :, :h16, :w16]
        _, _, f16, _, _ = net.encode_key(frames.unsqueeze(1))
        masks = random_masks(2 * b, h16, w16, rng)
        net.encode_value(frames, f16[:, 0], masks[:b], masks[b:])
    for m in bns:
        m.momentum = 0.1
    net.eval()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', required=True, help='checkpoint to write')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--single_object', action='store_true',
                        help='stage-0 layout (value encoder with 4 input channels)')
    parser.add_argument('--calibrate_bn', metavar='FOLDER',
                        help='set batch-norm statistics from the .jpg frames under FOLDER')
    parser.add_argument('--calibrate_frames', type=int, default=64)
    parser.add_argument('--debug', action='store_true')
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)
    net = STCN(single_object=args.single_object).eval()
    if args.calibrate_bn:
        rng = np.random.default_rng(args.seed)
        frames = calibration_frames(args.calibrate_bn, args.calibrate_frames, rng)
        calibrate_batch_norm(net, frames, rng)
    save_checkpoint(net.state_dict(), args.out)
    print(f'wrote {args.out}')


if __name__ == '__main__':
    run_main(main)
