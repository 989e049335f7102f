"""Random thin-plate-spline (TPS) warp of an image and its mask (numpy + cv2.remap).

Control points sit on an n x n grid over the image; each is moved by a uniform random
offset of up to `scale` (a fraction of the image size). The TPS that maps the moved points
back onto the grid gives, for every output pixel, where to sample the input (a backward map),
so the moved control points carry the content of the grid points. scale=0 is the identity.
"""
import cv2
import numpy as np


def _tps_kernel(r2):
    """U(r) = r^2 log r^2 (with U(0) = 0), from squared distances."""
    with np.errstate(divide='ignore', invalid='ignore'):
        out = r2 * np.log(r2)
    return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)


def tps_fit(ctrl, values, reg=0.0):
    """Fit f: R^2 -> R^D with f(ctrl_i) = values_i. ctrl [N, 2], values [N, D].

    Returns the parameters [N + 3, D]: N kernel weights, then the affine part (1, x, y).
    """
    n = ctrl.shape[0]
    d2 = ((ctrl[:, None, :] - ctrl[None, :, :]) ** 2).sum(-1)
    p = np.concatenate([np.ones((n, 1)), ctrl], 1)                 # [N, 3]
    a = np.zeros((n + 3, n + 3))
    a[:n, :n] = _tps_kernel(d2) + reg * np.eye(n)
    a[:n, n:] = p
    a[n:, :n] = p.T
    b = np.concatenate([values, np.zeros((3, values.shape[1]))], 0)
    return np.linalg.solve(a, b)


def tps_eval(ctrl, params, pts):
    """Evaluate a fitted TPS at pts [M, 2] -> [M, D]."""
    d2 = ((pts[:, None, :] - ctrl[None, :, :]) ** 2).sum(-1)      # [M, N]
    p = np.concatenate([np.ones((pts.shape[0], 1)), pts], 1)        # [M, 3]
    n = ctrl.shape[0]
    return _tps_kernel(d2) @ params[:n] + p @ params[n:]


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
    g = np.linspace(0.0, 1.0, n_points)
    src = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)           # [N, 2] (x, y) in [0, 1]
    dst = src + rng.uniform(-scale, scale, src.shape)
    params = tps_fit(dst, src)                                      # output point -> input point
    # the map is smooth: evaluate it on a coarse grid, then interpolate (corner-aligned, so
    # an affine map, the identity included, is reproduced exactly)
    gh, gw = min(h, 32), min(w, 32)
    ys, xs = np.linspace(0.0, 1.0, gh), np.linspace(0.0, 1.0, gw)
    pts = np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 2)          # [gh*gw, 2] output points
    mapped = tps_eval(dst, params, pts).reshape(gh, gw, 2)          # where to sample the input
    ry, rx = _interp_matrix(h, gh), _interp_matrix(w, gw)           # [h, gh], [w, gw]
    map_x = (ry @ mapped[..., 0] @ rx.T * (w - 1)).astype(np.float32)   # [h, w]
    map_y = (ry @ mapped[..., 1] @ rx.T * (h - 1)).astype(np.float32)
    out_im = cv2.remap(image, map_x, map_y, interpolation=cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_REFLECT_101)
    out_mask = None
    if mask is not None:
        out_mask = cv2.remap(mask, map_x, map_y, interpolation=cv2.INTER_NEAREST,
                             borderMode=cv2.BORDER_REFLECT_101)
    return out_im, out_mask
