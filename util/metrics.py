"""DAVIS 2017 semi-supervised J&F (docs/method.md, "Evaluation"), as the official evaluation.

Per sequence: the objects are ids 1..max id of the first ground-truth frame (255 = void, counted
as background); the first and last frames are left out; for each object and frame
  J = |P ∩ G| / |P ∪ G|  (1 when both are empty),
  F = boundary F-measure with a tolerance of ceil(0.008 · image diagonal) pixels.
Per object: Mean = nanmean over frames, Recall = fraction of frames above 0.5, Decay = mean of
the first quarter minus mean of the last quarter. Global: means over all objects, and
J&F-Mean = (mean J-Mean + mean F-Mean) / 2.

Choices (documented where the official code leaves room):
- Only the evaluated frames (all but the first and last gt frame) of a prediction are read, as
  the official reader does; a missing one is a UserError naming the file.
- With a DAVIS root as --gt_path and no --imageset, ImageSets/2017/<split>.txt is used when it
  exists (as the official evaluation does); otherwise every video folder is evaluated.
- CSV values are written with '%.3f' (the official float format), as fractions in [0, 1].
- A sequence with fewer than 3 gt frames has no evaluated frame: it is reported and left out
  (res['excluded']).

The command is `python -m scripts.evaluate`.
"""
import csv
import io
import os
import warnings
from multiprocessing import Pool

import cv2
import numpy as np

from util.errors import UserError, quiet_worker
from util.files import CurrentStderr, atomic_write, read_list
from util.image_io import read_mask
from util.layout import (check_name, davis_dirs, davis_imageset, frame_key, list_masks,
                         list_videos, stem)
from util.outputs import check_apart, check_file_output

VOID_ID = 255
GLOBAL_HEADER = ['J&F-Mean', 'J-Mean', 'J-Recall', 'J-Decay', 'F-Mean', 'F-Recall', 'F-Decay']
SEQ_HEADER = ['Sequence', 'J-Mean', 'F-Mean']
FLOAT_FMT = '%.3f'


# ----------------------------------------------------------------------------- per-frame measures

def region_similarity(gt, pred, void=None):
    """J (Jaccard) of one binary mask pair [H, W]; 1 when both are empty.

    void: optional bool [H, W]; those pixels are left out of intersection and union.
    """
    gt = np.asarray(gt).astype(bool)
    pred = np.asarray(pred).astype(bool)
    if gt.shape != pred.shape:
        raise ValueError(f'mask shapes differ: gt {gt.shape}, prediction {pred.shape}')
    keep = np.ones_like(gt) if void is None else ~np.asarray(void).astype(bool)
    inter = np.count_nonzero(gt & pred & keep)
    union = np.count_nonzero((gt | pred) & keep)
    return 1.0 if union == 0 else inter / union


def seg2bmap(mask):
    """One-pixel-wide boundary map bool [H, W] of a binary mask, as the classic seg2bmap.

    A pixel is boundary when it differs from its right, bottom or bottom-right neighbour.
    On the last row only the right neighbour is compared, on the last column only the bottom
    one, and the bottom-right corner pixel is never boundary.
    """
    m = np.asarray(mask).astype(bool)
    if m.ndim != 2:
        raise ValueError(f'seg2bmap expects a 2-D mask, got shape {m.shape}')
    b = np.zeros_like(m)
    right = m[:, :-1] != m[:, 1:]          # [H, W-1]
    down = m[:-1, :] != m[1:, :]           # [H-1, W]
    diag = m[:-1, :-1] != m[1:, 1:]        # [H-1, W-1]
    b[:-1, :-1] = right[:-1] | down[:, :-1] | diag
    b[-1, :-1] = right[-1]                 # last row: right neighbour only
    b[:-1, -1] = down[:, -1]               # last column: bottom neighbour only
    b[-1, -1] = False
    return b


def disk_kernel(radius):
    """uint8 [2r+1, 2r+1] disk: 1 where x² + y² ≤ r²."""
    r = int(radius)
    y, x = np.ogrid[-r:r + 1, -r:r + 1]
    return ((x * x + y * y) <= radius * radius).astype(np.uint8)


def boundary_tolerance(shape, bound_th=0.008):
    """Tolerance in pixels: bound_th itself when ≥ 1, else ceil(bound_th · image diagonal)."""
    if bound_th >= 1:
        return bound_th
    return float(np.ceil(bound_th * np.hypot(shape[0], shape[1])))


def boundary_measure(gt, pred, bound_th=0.008, void=None):
    """F (boundary F-measure) of one binary mask pair [H, W].

    Both boundaries are dilated by a disk of radius `boundary_tolerance`; precision = share of
    the prediction's boundary lying within the dilated gt boundary, recall likewise for gt.
    Empty boundaries: both → P = R = 1; prediction only → (1, 0); gt only → (0, 1).
    """
    gt = np.asarray(gt).astype(bool)
    pred = np.asarray(pred).astype(bool)
    if gt.shape != pred.shape:
        raise ValueError(f'mask shapes differ: gt {gt.shape}, prediction {pred.shape}')
    if void is not None:
        keep = ~np.asarray(void).astype(bool)
        gt, pred = gt & keep, pred & keep
    kernel = disk_kernel(boundary_tolerance(gt.shape, bound_th))
    gt_b = seg2bmap(gt)
    pred_b = seg2bmap(pred)
    n_gt = np.count_nonzero(gt_b)
    n_pred = np.count_nonzero(pred_b)
    if n_pred == 0 and n_gt == 0:
        precision, recall = 1.0, 1.0
    elif n_pred == 0:
        precision, recall = 1.0, 0.0
    elif n_gt == 0:
        precision, recall = 0.0, 1.0
    else:
        gt_dil = cv2.dilate(gt_b.astype(np.uint8), kernel).astype(bool)
        pred_dil = cv2.dilate(pred_b.astype(np.uint8), kernel).astype(bool)
        precision = np.count_nonzero(pred_b & gt_dil) / n_pred
        recall = np.count_nonzero(gt_b & pred_dil) / n_gt
    if precision + recall == 0:
        return 0.0
    return 2.0 * precision * recall / (precision + recall)


# ----------------------------------------------------------------------------- per-sequence

def evaluate_sequence(gt_masks, pred_masks, names=None):
    """J and F per object and evaluated frame of one sequence.

    gt_masks, pred_masks: equal-length lists of uint8 index masks [H, W] (one per gt frame);
      the first and last entries of pred_masks are not looked at (they may be None).
    names: optional per-frame prediction file names, used in error messages.
    Returns (J, F), each float [n_obj, n_frames - 2]; object k+1 is row k.
    Raises UserError when a prediction holds an id above the first frame's max id or has
    another size than its gt frame.
    """
    if len(gt_masks) != len(pred_masks):
        raise ValueError(f'{len(gt_masks)} gt masks but {len(pred_masks)} predictions')
    if not gt_masks:
        raise UserError('empty sequence: no ground-truth frames')
    first = np.asarray(gt_masks[0]).copy()
    first[first == VOID_ID] = 0
    n_obj = int(first.max())
    frames = range(1, len(gt_masks) - 1)
    J = np.zeros((n_obj, len(frames)))
    F = np.zeros((n_obj, len(frames)))
    for col, t in enumerate(frames):
        gt = np.asarray(gt_masks[t])
        pred = np.asarray(pred_masks[t])
        where = names[t] if names is not None else f'prediction frame {t}'
        if pred.shape != gt.shape:
            raise UserError(f'{where}: prediction size {pred.shape[::-1]} (W, H) differs from '
                            f'the ground truth {gt.shape[::-1]}')
        top = int(pred.max()) if pred.size else 0
        if top > n_obj:
            raise UserError(f'{where}: object id {top} in the prediction, but the sequence has '
                            f'only {n_obj} object(s) (ids 1..{n_obj} of its first gt frame)')
        gt = np.where(gt == VOID_ID, 0, gt)   # void counts as background
        for k in range(n_obj):
            g = gt == k + 1
            p = pred == k + 1
            J[k, col] = region_similarity(g, p)
            F[k, col] = boundary_measure(g, p)
    return J, F


def db_statistics(per_frame):
    """(Mean, Recall, Decay) of one object's per-frame values [n].

    Mean = nanmean; Recall = mean(values > 0.5); Decay = nanmean of the first quarter minus
    nanmean of the last quarter, the quarters bounded by round(linspace(1, n, 5)) - 1, both
    ends inclusive (halves rounded up, as the official code does with its +1e-10).
    """
    v = np.asarray(per_frame, dtype=np.float64)
    n = len(v)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', category=RuntimeWarning)
        mean = np.nanmean(v) if n else np.nan
        recall = np.mean(v > 0.5) if n else np.nan
        if n == 0:
            return mean, recall, np.nan
        ids = decay_bounds(n)
        first = np.nanmean(v[ids[0]:ids[1] + 1])
        last = np.nanmean(v[ids[3]:ids[4] + 1])
    return float(mean), float(recall), float(first - last)


def decay_bounds(n):
    """int [5]: quarter boundaries round(linspace(1, n, 5)) - 1 (halves rounded up)."""
    return (np.round(np.linspace(1, n, 5) + 1e-10) - 1).astype(np.int64)


# ----------------------------------------------------------------------------- folders

def resolve_gt(gt_path, imageset=None, split='val'):
    """(annotation folder, [videos]) for a folder of <video>/*.png or a DAVIS root."""
    if not os.path.isdir(gt_path):
        raise UserError(f'{gt_path}: ground-truth folder not found')
    ann = gt_path
    davis_ann = davis_dirs(gt_path)[1]
    is_root = os.path.isdir(davis_ann)
    if is_root:
        ann = davis_ann
    if imageset is None and is_root:
        default = davis_imageset(gt_path, 2017, split)
        if os.path.isfile(default):
            imageset = default
    if imageset is not None:
        videos = read_list(imageset, 'image-set file')
        for v in videos:
            if not os.path.isdir(os.path.join(ann, v)):
                raise UserError(f'{imageset}: video {v!r} has no annotation folder '
                                f'{os.path.join(ann, v)}')
    else:
        videos = list_videos(ann)
    if not videos:
        raise UserError(f'{ann}: no video folders to evaluate')
    return ann, videos


MIN_FRAMES = 3          # the first and last frames are not evaluated


def _eval_video(args):
    """Worker: (video, J [n_obj, T-2], F [n_obj, T-2]) for one video folder; J and F are
    None for a sequence of fewer than MIN_FRAMES ground-truth frames (nothing to evaluate).

    binarize: every nonzero ground-truth id becomes object 1 (DAVIS 2016: 0/255 masks)."""
    ann, pred_path, video, binarize = args
    gt_dir = os.path.join(ann, video)
    frames = list_masks(gt_dir, 'ground-truth folder')
    if not frames:
        raise UserError(f'{gt_dir}: no ground-truth PNG masks')
    pred_dir = os.path.join(pred_path, video)
    earlier = [p for p in (list_masks(pred_dir, 'prediction folder')
                           if os.path.isdir(pred_dir) else [])
               if frame_key(p) < frame_key(frames[0])]
    if earlier:
        raise UserError(f'{os.path.join(gt_dir, earlier[0])}: missing: the prediction starts '
                        f'at frame {stem(earlier[0])}, the ground truth only at '
                        f'{stem(frames[0])} (the first frame must be annotated)')
    if len(frames) < MIN_FRAMES:
        return video, None, None
    paths = [os.path.join(gt_dir, f) for f in frames]
    gt_masks = [read_mask(p) for p in paths]
    for p, m in zip(paths[1:], gt_masks[1:]):
        if m.shape != gt_masks[0].shape:
            raise UserError(f'{p}: ground-truth size {m.shape[1]}x{m.shape[0]} differs from '
                            f'the first frame {frames[0]} ({gt_masks[0].shape[1]}x'
                            f'{gt_masks[0].shape[0]})')
    if binarize:
        gt_masks = [(m > 0).astype(np.uint8) for m in gt_masks]
    if not np.any((gt_masks[0] != 0) & (gt_masks[0] != VOID_ID)):
        raise UserError(f'{paths[0]}: the first ground-truth frame holds no object')
    names = [os.path.join(pred_path, video, f) for f in frames]
    pred_masks = [None] * len(frames)
    for t in range(1, len(frames) - 1):       # only the evaluated frames are read
        pred_masks[t] = read_mask(names[t])
    J, F = evaluate_sequence(gt_masks, pred_masks, names)
    return video, J, F


def _fmt(x):
    return FLOAT_FMT % x


def _csv_text(header, rows):
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator='\n')
    w.writerow(header)
    for r in rows:
        w.writerow([r[0]] + [_fmt(x) for x in r[1:]])
    return buf.getvalue()


def _write_text(path, text):
    def write(tmp):
        with open(tmp, 'w') as f:
            f.write(text)
    atomic_write(path, write)


def evaluate(gt_path, pred_path, imageset=None, split='val', out_dir=None, workers=1,
             progress=True, verbose=True, binarize=False):
    """Evaluate every video; write the two CSVs into out_dir (default pred_path).

    binarize: read the ground truth as one object (every id > 0 -> 1), for the 0/255 masks
    of DAVIS 2016 (255 would otherwise be void).

    Returns {'J&F-Mean', 'J-Mean', 'J-Recall', 'J-Decay', 'F-Mean', 'F-Recall', 'F-Decay':
    float, 'per_object': [{'Sequence': '<video>_<id>', 'J-Mean', 'J-Recall', 'J-Decay',
    'F-Mean', 'F-Recall', 'F-Decay'}], 'J': {name: per-frame J}, 'F': {name: per-frame F}}.
    """
    gt_path, pred_path = str(gt_path), str(pred_path)
    ann, videos = resolve_gt(gt_path, imageset, split)
    if not os.path.isdir(pred_path):
        raise UserError(f'{pred_path}: prediction folder not found')
    check_apart([('prediction folder (--pred_path)', pred_path)], [('ground truth', ann)],
                reason='the ground truth would be scored against itself')
    check_apart([('CSV output folder (--out)', out_dir)], [('ground truth', ann)])
    check_name(split, '--split', 'split')              # it names the CSV files
    for name in csv_names(split):
        check_file_output(os.path.join(pred_path if out_dir is None else str(out_dir), name),
                          'CSV file', [('ground truth', ann)])
    jobs = [(ann, pred_path, v, bool(binarize)) for v in videos]
    results = {}
    bar = None
    if progress:
        import progressbar
        bar = progressbar.ProgressBar(max_value=len(jobs), prefix='J&F ', fd=CurrentStderr())
    if workers > 1:
        with Pool(min(workers, len(jobs)), initializer=quiet_worker) as pool:
            for i, (v, J, F) in enumerate(pool.imap_unordered(_eval_video, jobs)):
                results[v] = (J, F)
                if bar is not None:
                    bar.update(i + 1)
    else:
        for i, job in enumerate(jobs):
            v, J, F = _eval_video(job)
            results[v] = (J, F)
            if bar is not None:
                bar.update(i + 1)
    if bar is not None:
        bar.finish()

    per_object, per_J, per_F = [], {}, {}
    short = [v for v in videos if results[v][0] is None]
    for v in short:
        print(f'note: {os.path.join(ann, v)}: fewer than {MIN_FRAMES} ground-truth frames '
              '(the first and last are not evaluated): sequence excluded')
    for v in videos:                                   # keep the image-set order
        J, F = results[v]
        if J is None:
            continue
        for k in range(J.shape[0]):
            name = f'{v}_{k + 1}'
            jm, jr, jd = db_statistics(J[k])
            fm, fr, fd = db_statistics(F[k])
            per_object.append({'Sequence': name, 'J-Mean': jm, 'J-Recall': jr, 'J-Decay': jd,
                               'F-Mean': fm, 'F-Recall': fr, 'F-Decay': fd})
            per_J[name], per_F[name] = J[k], F[k]
    if not per_object:
        raise UserError(f'{ann}: no sequence with {MIN_FRAMES} or more ground-truth frames '
                        'to evaluate')

    def avg(key):
        return float(np.mean([o[key] for o in per_object]))

    res = {k: avg(k) for k in GLOBAL_HEADER[1:]}
    res['J&F-Mean'] = (res['J-Mean'] + res['F-Mean']) / 2.0
    res = {k: res[k] for k in GLOBAL_HEADER}
    res['per_object'] = per_object
    res['excluded'] = short
    res['J'], res['F'] = per_J, per_F

    out_dir = pred_path if out_dir is None else str(out_dir)
    g_text = _csv_plain(GLOBAL_HEADER, [res[k] for k in GLOBAL_HEADER])
    s_text = _csv_text(SEQ_HEADER, [[o['Sequence'], o['J-Mean'], o['F-Mean']]
                                    for o in per_object])
    g_name, s_name = csv_names(split)
    _write_text(os.path.join(out_dir, g_name), g_text)
    _write_text(os.path.join(out_dir, s_name), s_text)
    if verbose:
        print(format_table(res, split))
    return res


def csv_names(split):
    """The file names of the global and the per-sequence CSV of a split."""
    return f'global_results-{split}.csv', f'per-sequence_results-{split}.csv'


def _csv_plain(header, values):
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator='\n')
    w.writerow(header)
    w.writerow([_fmt(x) for x in values])
    return buf.getvalue()


def format_table(res, split='val'):
    """The global and per-object tables as text (what the CLI prints)."""
    lines = [f'--- Global results for {split} ---',
             ' '.join(f'{h:>9}' for h in GLOBAL_HEADER),
             ' '.join(f'{_fmt(res[h]):>9}' for h in GLOBAL_HEADER),
             f'--- Per-object results for {split} ---',
             f'{"Sequence":<24} {"J-Mean":>7} {"F-Mean":>7}']
    for o in res['per_object']:
        lines.append(f'{o["Sequence"]:<24} {_fmt(o["J-Mean"]):>7} {_fmt(o["F-Mean"]):>7}')
    return '\n'.join(lines)

