"""Random thin-plate-spline (TPS) warp of an image and its mask (thin-plate-spline + cv2.remap).

Control points sit on an n x n grid over the image; each is moved by a uniform random
offset of up to `scale` (a fraction of the image size). The TPS that maps the moved points
back onto the grid (fitted by the `thin-plate-spline` package) gives, for every output pixel,
where to sample the input (a backward map), so the moved control points carry the content of
the grid points. scale=0 is the identity.
"""
import cv2
import numpy as np
from tps import ThinPlateSpline

# the backward map is smooth: it is evaluated on at most this many points per side, then
# interpolated linearly to every pixel
MAP_GRID = 32


def _lerp_rows(a, n_out):
    """Linear resampling of the rows of a [n_in, K] to [n_out, K], first and last aligned."""
    n_in = a.shape[0]
    pos = np.linspace(0.0, n_in - 1.0, n_out)
    lo = np.minimum(np.floor(pos).astype(int), max(n_in - 2, 0))
    hi = np.minimum(lo + 1, n_in - 1)
    f = (pos - lo)[:, None]
    return a[lo] * (1.0 - f) + a[hi] * f


def _resize_corner_aligned(a, h, w):
    """Bilinear resize of a [gh, gw] to [h, w], corners aligned: row gathers, no matrix
    product (BLAS threads stall beside DataLoader workers)."""
    rows = _lerp_rows(np.ascontiguousarray(a), h)                  # [h, gw]
    return _lerp_rows(np.ascontiguousarray(rows.T), w).T          # [h, w]


def backward_map(h, w, src, dst):
    """Backward map of the TPS taking dst [N, 2] onto src [N, 2] (x, y in [0, 1]).

    Returns (map_x, map_y), float32 [h, w] each: the input pixel each output pixel samples.
    Corner-aligned interpolation of the coarse map reproduces an affine map (the identity
    included) exactly.
    """
    spline = ThinPlateSpline(alpha=0.0).fit(dst, src)              # output point -> input point
    gh, gw = min(h, MAP_GRID), min(w, MAP_GRID)
    ys, xs = np.linspace(0.0, 1.0, gh), np.linspace(0.0, 1.0, gw)
    pts = np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 2)          # [gh*gw, 2] output points
    mapped = spline.transform(pts).reshape(gh, gw, 2)               # where to sample the input
    map_x = _resize_corner_aligned(mapped[..., 0], h, w) * (w - 1)  # [h, w]
    map_y = _resize_corner_aligned(mapped[..., 1], h, w) * (h - 1)
    return map_x.astype(np.float32), map_y.astype(np.float32)


def random_control_points(n_points, scale, rng):
    """Grid points src [N, 2] in [0, 1] and their moved copies dst = src + U(-scale, scale)."""
    g = np.linspace(0.0, 1.0, n_points)
    src = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)           # [N, 2] (x, y)
    dst = src + rng.uniform(-scale, scale, src.shape)
    return src, dst


def random_tps_warp(image, mask, scale=0.1, n_points=5, rng=None):
    """Warp image [H, W(, C)] (bilinear) and mask [H, W] (nearest) by one random TPS.

    scale: largest control point offset, as a fraction of the image width / height.
    n_points: control points per side (n_points^2 in all). rng: numpy Generator (or the
    numpy.random module); a fresh unseeded Generator when None.
    Returns (warped image, warped mask), same shapes and dtypes; borders are reflected, so
    the mask only holds values it had before.
    """
    rng = np.random.default_rng() if rng is None else rng
    h, w = image.shape[:2]
    if mask is not None and mask.shape[:2] != (h, w):
        raise ValueError(f'image {image.shape[:2]} and mask {mask.shape[:2]} sizes differ')
    src, dst = random_control_points(n_points, scale, rng)
    map_x, map_y = backward_map(h, w, src, dst)
    out_im = cv2.remap(image, map_x, map_y, interpolation=cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_REFLECT_101)
    out_mask = None
    if mask is not None:
        out_mask = cv2.remap(mask, map_x, map_y, interpolation=cv2.INTER_NEAREST,
                             borderMode=cv2.BORDER_REFLECT_101)
    return out_im, out_mask
