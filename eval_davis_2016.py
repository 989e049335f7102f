"""DAVIS 2016 val inference: eval_davis.py with --year 2016 (same flags otherwise).

    python eval_davis_2016.py --model ckpts/stcn.pth --davis_path ../DAVIS --output out/d16
"""
import eval_davis
from util.errors import run_main


def main(argv=None):
    import sys
    argv = sys.argv[1:] if argv is None else list(argv)
    return eval_davis.main(argv + ['--year', '2016'])


if __name__ == '__main__':
    run_main(main)
