"""Charts of evaluation results (matplotlib, Agg backend: no display needed)."""
import io

import numpy as np

from util.files import atomic_write


def jf_bar_chart(per_object, path, title='J&F per sequence'):
    """A bar per sequence (per object, as the per-sequence CSV): J&F = (J-Mean + F-Mean) / 2,
    with J-Mean and F-Mean as markers and the mean J&F as a dashed line; PNG, atomically.

    per_object: [{'Sequence': name, 'J-Mean': float, 'F-Mean': float}, ...]
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    names = [o['Sequence'] for o in per_object]
    j = np.array([o['J-Mean'] for o in per_object], dtype=float)
    f = np.array([o['F-Mean'] for o in per_object], dtype=float)
    jf = (j + f) / 2.0
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.35 * len(names) + 3.5), 4.5))
    try:
        ax.bar(x, np.nan_to_num(jf), color='#4878b0', label='J&F')
        ax.plot(x, j, 'v', color='#d0582a', label='J-Mean')
        ax.plot(x, f, '^', color='#3a9a4a', label='F-Mean')
        if np.isfinite(jf).any():
            mean = float(np.nanmean(jf))
            ax.axhline(mean, color='k', linestyle='--', linewidth=1,
                       label=f'mean J&F {mean:.3f}')
        ax.set_xticks(x)
        ax.set_xticklabels(names, rotation=70, ha='right', fontsize=8)
        ax.set_ylim(0.0, 1.0)
        ax.set_xlim(-0.6, len(names) - 0.4)
        ax.set_ylabel('score')
        ax.set_title(title)
        ax.legend(loc='upper left', bbox_to_anchor=(1.01, 1.0), fontsize=8)   # off the bars
        ax.grid(axis='y', alpha=0.3)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format='png', dpi=100)
    finally:
        plt.close(fig)

    def write(tmp):
        with open(tmp, 'wb') as fh:
            fh.write(buf.getvalue())
    atomic_write(path, write)
    return path
