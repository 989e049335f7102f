"""Stage-0 TPS warp benchmark: the `thin-plate-spline` package against a hand-written solver.

    python -m scripts.bench.tps_warp [--sizes 384 480x854 --points 5 --scale 0.02
        --repeats 200 --json OUT]

For each image size, warps a random RGB image and a mask with the same control points in
three ways, one call each in turn (who starts rotates) so all see the same machine load:
  ours        dataset.tps (the spline fitted and evaluated by the package, the coarse map
              brought to every pixel by row gathers, no BLAS)
  pkg_matrix  the package's spline with base's interpolation matrix products (the solver
              swap alone)
  base        the hand-written solver this project used before: numpy solves the TPS system,
              interpolation matrix products
Reported: median milliseconds for the backward map alone and for the whole warp (map and
two cv2.remap), the base/ours and base/pkg_matrix ratios, the largest difference between
ours' and base's backward maps (pixels) and whether the warped masks are identical.
Set OPENBLAS_NUM_THREADS / OMP_NUM_THREADS to see the effect of BLAS threads (the matrix
products use them; a DataLoader worker inherits the setting).
"""
import argparse
import os
import time

import cv2
import numpy as np
from tps import ThinPlateSpline

from dataset import tps as ours
from scripts.bench.common import load_note, median, write_json


# ---------------------------------------------------------------- reference (hand-written)

def _base_kernel(r2):
    """U(r) = r^2 log r^2 (U(0) = 0), from squared distances."""
    with np.errstate(divide='ignore', invalid='ignore'):
        out = r2 * np.log(r2)
    return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)


def _interp_matrix(n_out, n_in):
    """[n_out, n_in] linear interpolation weights, first and last samples aligned."""
    m = np.zeros((n_out, n_in))
    if n_in == 1:
        m[:, 0] = 1.0
        return m
    pos = np.linspace(0.0, n_in - 1.0, n_out)
    lo = np.minimum(np.floor(pos).astype(int), n_in - 2)
    frac = pos - lo
    m[np.arange(n_out), lo] = 1.0 - frac
    m[np.arange(n_out), lo + 1] += frac
    return m


def _matrix_resize(mapped, h, w):
    """The coarse map to every pixel by two interpolation-matrix products per channel, on
    strided slices (as the hand-written code did)."""
    ry, rx = _interp_matrix(h, mapped.shape[0]), _interp_matrix(w, mapped.shape[1])
    map_x = (ry @ mapped[..., 0] @ rx.T * (w - 1)).astype(np.float32)
    map_y = (ry @ mapped[..., 1] @ rx.T * (h - 1)).astype(np.float32)
    return map_x, map_y


def pkg_matrix_backward_map(h, w, src, dst):
    """The package's spline with the reference's interpolation matrices (solver swap alone)."""
    spline = ThinPlateSpline().fit(dst, src)
    gh, gw = min(h, ours.MAP_GRID), min(w, ours.MAP_GRID)
    ys, xs = np.linspace(0.0, 1.0, gh), np.linspace(0.0, 1.0, gw)
    pts = np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 2)
    return _matrix_resize(spline.transform(pts).reshape(gh, gw, 2), h, w)


def base_backward_map(h, w, src, dst):
    """The backward map by solving the (N + 3) x (N + 3) TPS system directly, then
    interpolation matrices."""
    n = dst.shape[0]
    d2 = ((dst[:, None, :] - dst[None, :, :]) ** 2).sum(-1)
    p = np.concatenate([np.ones((n, 1)), dst], 1)                   # [N, 3]
    a = np.zeros((n + 3, n + 3))
    a[:n, :n], a[:n, n:], a[n:, :n] = _base_kernel(d2), p, p.T
    params = np.linalg.solve(a, np.concatenate([src, np.zeros((3, 2))], 0))   # [N + 3, 2]
    gh, gw = min(h, ours.MAP_GRID), min(w, ours.MAP_GRID)
    ys, xs = np.linspace(0.0, 1.0, gh), np.linspace(0.0, 1.0, gw)
    pts = np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 2)
    k = _base_kernel(((pts[:, None, :] - dst[None, :, :]) ** 2).sum(-1))
    mapped = (k @ params[:n] + np.concatenate([np.ones((len(pts), 1)), pts], 1) @ params[n:])
    return _matrix_resize(mapped.reshape(gh, gw, 2), h, w)


def warp_with(map_fn, image, mask, src, dst):
    h, w = image.shape[:2]
    map_x, map_y = map_fn(h, w, src, dst)
    out_im = cv2.remap(image, map_x, map_y, interpolation=cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_REFLECT_101)
    out_mask = cv2.remap(mask, map_x, map_y, interpolation=cv2.INTER_NEAREST,
                         borderMode=cv2.BORDER_REFLECT_101)
    return out_im, out_mask


# ---------------------------------------------------------------- timing

def _size(text):
    h, _, w = text.partition('x')
    return int(h), int(w or h)


def bench_size(h, w, args, rng):
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    mask = rng.integers(0, 3, (h, w), dtype=np.uint8)
    impls = {'ours': ours.backward_map, 'pkg_matrix': pkg_matrix_backward_map,
             'base': base_backward_map}
    times = {f'{k}_{part}': [] for k in impls for part in ('map', 'warp')}
    max_diff, mask_same = 0.0, True
    for r in range(args.repeats):
        src, dst = ours.random_control_points(args.points, args.scale, rng)
        order = list(impls)[r % 3:] + list(impls)[:r % 3]             # who starts rotates
        outs = {}
        for k in order:
            t0 = time.perf_counter()
            maps = impls[k](h, w, src, dst)
            t1 = time.perf_counter()
            outs[k] = (maps, warp_with(impls[k], image, mask, src, dst))
            t2 = time.perf_counter()
            times[f'{k}_map'].append((t1 - t0) * 1e3)
            times[f'{k}_warp'].append((t2 - t1) * 1e3)
        for a, b in zip(outs['ours'][0], outs['base'][0]):
            max_diff = max(max_diff, float(np.abs(a - b).max()))
        mask_same &= bool(np.array_equal(outs['ours'][1][1], outs['base'][1][1]))
    row = {'size': f'{h}x{w}', 'max_map_diff_px': max_diff, 'masks_identical': mask_same}
    for k, v in times.items():
        row[f'{k}_ms_median'], row[f'{k}_ms_best'] = median(v), min(v)
    row['warp_ratio_base_over_ours'] = row['base_warp_ms_median'] / row['ours_warp_ms_median']
    row['warp_ratio_base_over_pkg_matrix'] = (row['base_warp_ms_median']
                                              / row['pkg_matrix_warp_ms_median'])
    return row


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--sizes', nargs='+', default=['384', '480x854'],
                    help='HxW (or one number for a square)')
    ap.add_argument('--points', type=int, default=5)
    ap.add_argument('--scale', type=float, default=0.02)
    ap.add_argument('--repeats', type=int, default=200)
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--json')
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    print(f'{os.cpu_count()} logical CPUs, cv2 {cv2.__version__}, numpy {np.__version__}, '
          f'{args.points}x{args.points} control points, scale {args.scale}, '
          f'{args.repeats} repeats; {load_note()}')
    rows = []
    print('| size | ours map ms | pkg_matrix map ms | base map ms | ours warp ms '
          '| pkg_matrix warp ms | base warp ms | base/ours (warp) | base/pkg_matrix (warp) '
          '| max map diff ours-base px | masks identical |')
    print('|---|---|---|---|---|---|---|---|---|---|---|')
    for text in args.sizes:
        row = bench_size(*_size(text), args, rng)
        rows.append(row)
        print(f"| {row['size']} | {row['ours_map_ms_median']:.3f}"
              f" | {row['pkg_matrix_map_ms_median']:.3f} | {row['base_map_ms_median']:.3f}"
              f" | {row['ours_warp_ms_median']:.3f} | {row['pkg_matrix_warp_ms_median']:.3f}"
              f" | {row['base_warp_ms_median']:.3f} | x{row['warp_ratio_base_over_ours']:.2f}"
              f" | x{row['warp_ratio_base_over_pkg_matrix']:.2f} | {row['max_map_diff_px']:.2e}"
              f" | {row['masks_identical']} |")
    print(f'(medians; {load_note()})')
    if args.json:
        write_json(args.json, {'args': vars(args), 'rows': rows, 'load': load_note()})


if __name__ == '__main__':
    main()
