"""Print the demo's summary table from the global_results CSVs written by scripts.evaluate."""
import argparse
import csv
import os

ROWS = [('untrained', 'untrained network (DAVIS-layout val)', 'val'),
        ('s0', 'after stage 0, static images (DAVIS-layout val)', 'val'),
        ('phase1', 'after phase 1 (DAVIS-layout val)', 'val'),
        ('phase2', 'after phase 2 (DAVIS-layout val)', 'val'),
        ('bank', 'pseudo-label bank vs hidden labels (DAVIS-layout train)', 'train')]
COLS = ['J&F-Mean', 'J-Mean', 'F-Mean']


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--eval_dir', required=True)
    parser.add_argument('--seconds', type=int, default=None)
    args = parser.parse_args()
    width = max(len(r[1]) for r in ROWS)
    print(f'{"":{width}}  ' + '  '.join(f'{c:>8}' for c in COLS))
    for folder, label, split in ROWS:
        path = os.path.join(args.eval_dir, folder, f'global_results-{split}.csv')
        with open(path) as f:
            row = next(csv.DictReader(f))
        print(f'{label:{width}}  ' + '  '.join(f'{float(row[c]):8.3f}' for c in COLS))
    if args.seconds is not None:
        print(f'wall time: {args.seconds // 60} min {args.seconds % 60} s')


if __name__ == '__main__':
    main()
