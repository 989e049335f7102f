"""Write the weights of a freshly initialised (seeded) STCN as a plain state_dict.

The demo uses it as the common starting point of phase 1 and phase 2 and as the "untrained"
row of its table: `python -m util.init_weights --out ckpts/init.pth --seed 0`.
"""
import argparse

import torch

from model.network import STCN
from util.errors import run_main
from util.io import save_checkpoint


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', required=True, help='checkpoint to write')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--single_object', action='store_true',
                        help='stage-0 layout (value encoder with 4 input channels)')
    parser.add_argument('--debug', action='store_true')
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)
    save_checkpoint(STCN(single_object=args.single_object).state_dict(), args.out)
    print(f'wrote {args.out}')


if __name__ == '__main__':
    run_main(main)
