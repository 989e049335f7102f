"""Statistics of the two-shot toy experiment: mean and sample sd over seeds, paired per-seed
differences with t-intervals and sign counts, and a bootstrap over the validation videos."""
import math
import random

from scripts.experiments.two_shot_arms import ARMS, MEASURES

DIFFS = (('phase2', 'naive'), ('phase1', 'naive'), ('all', 'phase2'))   # paired: a - b
BOOT_DRAWS = 2000                            # bootstrap resamples of the validation videos
# 0.975 quantiles of Student's t, df 1..30
T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
        2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
        2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def t975(df):
    """0.975 quantile of Student's t with df degrees of freedom (two-sided 95 % interval)."""
    if df <= len(T975):
        return T975[df - 1]
    return 1.960 + 2.4 / df                    # within 0.003 of the quantile above df 30


def sample_sd(xs):
    if len(xs) < 2:
        return None
    mean = sum(xs) / len(xs)
    return math.sqrt(sum((x - mean) ** 2 for x in xs) / (len(xs) - 1))


def summarise(per_seed):
    """{row: {measure: {'mean', 'std', 'values'}}} over the seeds (std: sample, n-1)."""
    rows = {}
    for row in ('stage0',) + ARMS + ('bank',):
        vals = [r[row] for r in per_seed if r.get(row) is not None]
        if not vals:
            continue
        rows[row] = {}
        for m in MEASURES:
            xs = [v[m] for v in vals]
            rows[row][m] = {'mean': round(sum(xs) / len(xs), 4),
                            'std': round(sample_sd(xs) or 0.0, 4), 'values': xs}
    return rows


def paired(per_seed):
    """Per-seed differences of the arms in DIFFS: {'a - b': {measure: {'values' (one per
    seed), 'mean', 'sd', 'ci95' (t-interval over the seeds; None for one seed), 'positive',
    'negative'}}}. Both arms of a seed share the stage-0 weights, labeled frames and seed."""
    out = {}
    for a, b in DIFFS:
        out[f'{a} - {b}'] = {}
        for m in MEASURES:
            ds = [round(r[a][m] - r[b][m], 4) for r in per_seed]
            mean, sd = sum(ds) / len(ds), sample_sd(ds)
            half = None if sd is None else t975(len(ds) - 1) * sd / math.sqrt(len(ds))
            out[f'{a} - {b}'][m] = {
                'values': ds, 'mean': round(mean, 4),
                'sd': None if sd is None else round(sd, 4),
                'ci95': None if half is None else [round(mean - half, 4), round(mean + half, 4)],
                'positive': sum(d > 0 for d in ds), 'negative': sum(d < 0 for d in ds)}
    return out


def jf_mean(videos, names):
    """J&F-Mean over the objects of the listed videos (a video listed twice counts twice)."""
    objs = [o for n in names for o in videos[n]]
    return (sum(o[0] for o in objs) + sum(o[1] for o in objs)) / (2 * len(objs))


def bootstrap(res, pairs, draws=BOOT_DRAWS, seed=0):
    """Evaluation-only noise of one seed's models: the sd of J&F-Mean, and of the pairs'
    differences, over resamplings of the validation videos with replacement (every model
    scored on the same resamples). res: {arm: {'videos': {video: [[J, F] per object]}}}."""
    arms = sorted({arm for pair in pairs for arm in pair})
    names = sorted(res[arms[0]]['videos'])
    rng = random.Random(seed)
    samples = [[rng.choice(names) for _ in names] for _ in range(draws)]
    jf = {arm: [jf_mean(res[arm]['videos'], s) for s in samples] for arm in arms}
    sd = {arm: round(sample_sd(jf[arm]), 4) for arm in arms}
    for a, b in pairs:
        sd[f'{a} - {b}'] = round(sample_sd([x - y for x, y in zip(jf[a], jf[b])]), 4)
    return {'videos': len(names), 'draws': draws, 'sd': sd}
