"""Drawing one deterministic synthetic VOS video: textured objects over a drifting background.

Each video is a drifting textured background with K textured objects (ellipses and
polygons, each with its own colours and pattern drawn in object coordinates, so the texture
moves, rotates and scales with the object). Objects move smoothly (velocity + small random
acceleration, bouncing off the borders), change scale smoothly, rotate slowly and occlude
each other in a fixed z-order. Everything is drawn from the numpy Generator passed in.
"""
import cv2
import numpy as np


def _smooth_noise(rng, h, w, cells):
    """Smooth random field in [0, 1], float32 [h, w]: a coarse random grid, bicubic upsampled."""
    ch, cw = max(2, int(round(cells * h / max(h, w)))), max(2, int(cells))
    small = rng.random((ch, cw)).astype(np.float32)
    big = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    lo, hi = float(big.min()), float(big.max())
    return (big - lo) / max(hi - lo, 1e-6)


def _make_background(rng, h, w):
    """A muted textured image float32 [h, w, 3] (0..255), larger than a frame so it can drift."""
    c1, c2 = rng.uniform(40, 200, 3), rng.uniform(40, 200, 3)
    t = 0.7 * _smooth_noise(rng, h, w, rng.uniform(3, 6)) \
        + 0.3 * _smooth_noise(rng, h, w, rng.uniform(12, 24))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ang, freq = rng.uniform(0, np.pi), rng.uniform(0.05, 0.15)
    stripes = np.sin(freq * (xx * np.cos(ang) + yy * np.sin(ang)))
    img = c1 * (1 - t[..., None]) + c2 * t[..., None] + 12.0 * stripes[..., None]
    return img.astype(np.float32)


class _Object:
    """One moving object: shape, texture and motion state (pixels, per listed frame)."""

    def __init__(self, rng, height, width, enter, speed, drift=0.0):
        self.enter = enter
        short = min(height, width)
        self.radius = rng.uniform(0.12, 0.24) * short            # base size in px
        self.kind = 'ellipse' if rng.random() < 0.5 else 'polygon'
        self.aspect = rng.uniform(0.55, 1.0)                       # ellipse b / a
        n_vert = int(rng.integers(3, 9))
        ang = np.sort(rng.uniform(0, 2 * np.pi, n_vert))
        if n_vert <= 4:                                            # spread few vertices out
            ang = np.linspace(0, 2 * np.pi, n_vert, endpoint=False) + rng.uniform(0, 1)
        self.poly = np.stack([np.cos(ang), np.sin(ang)], 1) * rng.uniform(0.7, 1.2, (n_vert, 1))
        # texture: two saturated colours mixed by a pattern in object coordinates + a noise patch
        hue = rng.uniform(0, 1)
        self.c1 = _hsv_to_rgb(hue, rng.uniform(0.6, 1.0), rng.uniform(0.6, 1.0))
        self.c2 = _hsv_to_rgb((hue + rng.uniform(0.15, 0.5)) % 1, rng.uniform(0.4, 1.0),
                              rng.uniform(0.3, 0.9))
        self.pattern = ('stripes', 'checker', 'dots', 'rings')[int(rng.integers(0, 4))]
        self.freq = rng.uniform(2.0, 5.0)                          # cycles per radius
        self.pat_angle = rng.uniform(0, np.pi)
        self.patch = rng.uniform(-25, 25, (8, 8)).astype(np.float32)
        # motion: centre, velocity (px / listed frame), acceleration noise, scale, rotation
        self.speed = speed
        self.vmax = 0.05 * width
        v = rng.uniform(0.01, 0.035) * width
        heading = rng.uniform(0, 2 * np.pi)
        if enter > 0:                      # late objects come in from a border, moving inward
            side = int(rng.integers(0, 4))
            x = (0.05 * width, 0.95 * width, rng.uniform(0.2, 0.8) * width,
                 rng.uniform(0.2, 0.8) * width)[side]
            y = (rng.uniform(0.2, 0.8) * height, rng.uniform(0.2, 0.8) * height,
                 0.05 * height, 0.95 * height)[side]
            heading = (0.0, np.pi, np.pi / 2, -np.pi / 2)[side] + rng.uniform(-0.6, 0.6)
        else:
            x, y = rng.uniform(0.15, 0.85) * width, rng.uniform(0.15, 0.85) * height
        self.pos = np.array([x, y])
        self.vel = v * np.array([np.cos(heading), np.sin(heading)])
        self.acc_sigma = 0.004 * width
        self.scale_amp = rng.uniform(0.1, 0.3)
        self.scale_w = rng.uniform(0.08, 0.25)                     # rad / listed frame
        self.scale_phase = rng.uniform(0, 2 * np.pi)
        self.theta0 = rng.uniform(0, 2 * np.pi)
        self.theta_w = rng.uniform(-0.06, 0.06)
        self.bounds = np.array([[0.05 * width, 0.95 * width], [0.05 * height, 0.95 * height]])
        self.drift = float(drift)
        if self.drift > 0:      # appearance drift: colours blend towards a second pair
            self.d1 = _hsv_to_rgb((hue + rng.uniform(0.25, 0.75)) % 1, rng.uniform(0.6, 1.0),
                                  rng.uniform(0.6, 1.0))
            self.d2 = _hsv_to_rgb(rng.uniform(0, 1), rng.uniform(0.4, 1.0), rng.uniform(0.3, 0.9))
            self.drift_w = rng.uniform(0.05, 0.12)                 # rad / listed frame
            self.drift_phase = rng.uniform(0, 2 * np.pi)
            self.scale_amp += 0.35 * self.drift                    # larger scale changes
            self.freq_amp = 0.4 * self.drift                       # pattern frequency change

    def step(self, rng):
        """Advance one frame: random acceleration, speed cap, move, bounce off the borders."""
        dt = self.speed
        self.vel = self.vel + rng.normal(0, self.acc_sigma, 2) * np.sqrt(dt)  # random walk
        s = float(np.hypot(*self.vel))
        if s > self.vmax:
            self.vel = self.vel * (self.vmax / s)
        self.pos = self.pos + self.vel * dt
        for d in range(2):
            lo, hi = self.bounds[d]
            if self.pos[d] < lo:
                self.pos[d], self.vel[d] = 2 * lo - self.pos[d], abs(self.vel[d])
            elif self.pos[d] > hi:
                self.pos[d], self.vel[d] = 2 * hi - self.pos[d], -abs(self.vel[d])

    def render(self, t, xx, yy):
        """Shape mask bool [H, W] and colour float32 [H, W, 3] at (listed-frame) time t."""
        tt = t * self.speed
        scale = self.radius * np.exp(self.scale_amp * np.sin(self.scale_w * tt + self.scale_phase))
        th = self.theta0 + self.theta_w * tt
        cos, sin = np.cos(th), np.sin(th)
        dx, dy = xx - self.pos[0], yy - self.pos[1]
        u = (dx * cos + dy * sin) / scale                          # object coordinates
        v = (-dx * sin + dy * cos) / scale
        if self.kind == 'ellipse':
            inside = u * u + (v / self.aspect) ** 2 <= 1.0
        else:
            pts = self.poly @ np.array([[cos, sin], [-sin, cos]]) * scale + self.pos
            canvas = np.zeros(xx.shape, np.uint8)
            cv2.fillPoly(canvas, [np.round(pts * 16).astype(np.int32)], 1,
                         lineType=cv2.LINE_8, shift=4)
            inside = canvas > 0
        c1, c2, freq = self.c1, self.c2, self.freq
        if self.drift > 0:
            w = self.drift * 0.5 * (1 - np.cos(self.drift_w * tt + self.drift_phase))
            c1, c2 = (1 - w) * c1 + w * self.d1, (1 - w) * c2 + w * self.d2
            freq = freq * (1 + self.freq_amp * np.sin(self.drift_w * tt + self.drift_phase))
        f = 2 * np.pi * freq
        if self.pattern == 'stripes':
            p = np.sin(f * (u * np.cos(self.pat_angle) + v * np.sin(self.pat_angle)))
        elif self.pattern == 'checker':
            p = np.sign(np.sin(f * u) * np.sin(f * v))
        elif self.pattern == 'dots':
            p = np.sin(f * u) + np.sin(f * v) - 0.5
        else:
            p = np.sin(f * np.sqrt(u * u + v * v))
        p = (np.clip(p, -1, 1) + 1) / 2                            # [H, W] in [0, 1]
        n = self.patch.shape[0]
        iv, iu = np.floor(v * n).astype(np.int64) % n, np.floor(u * n).astype(np.int64) % n
        noise = self.patch[iv, iu]                                 # [H, W] texture noise
        colour = c1 * (1 - p[..., None]) + c2 * p[..., None] + noise[..., None]
        return inside, colour


def _hsv_to_rgb(h, s, v):
    """One HSV colour (all in [0, 1]) as float RGB 0..255."""
    i = int(h * 6) % 6
    f = h * 6 - int(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    rgb = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]
    return np.array(rgb) * 255.0


def make_video(rng, frames, height, width, n_objects, ids=None, enter=None, speed=1.0,
               noise=3.0, min_visible=0.004, max_tries=20, drift=0.0):
    """Render one synthetic video.

    rng: numpy Generator (all randomness comes from it). ids: label of each object
    (default 1..K); enter: frame index at which each object appears (default all 0); speed:
    motion per frame relative to the default (0.2 = five times finer time steps); drift (0..1):
    appearance change over time: each object's colours blend towards a second pair, its
    pattern frequency and scale vary more, and the z-order of the objects flips once in the
    middle third of the video (0 = none).
    An object must cover at least `min_visible` of the image on its entry frame; the scene is
    redrawn (from the same rng, so still deterministic) up to `max_tries` times until it does.
    Returns (list of uint8 [H, W, 3] frames, list of uint8 [H, W] index masks).
    """
    ids = list(range(1, n_objects + 1)) if ids is None else [int(i) for i in ids]
    enter = [0] * n_objects if enter is None else [int(e) for e in enter]
    if len(ids) != n_objects or len(enter) != n_objects:
        raise ValueError('ids and enter need one entry per object')
    if any(not 1 <= i <= 255 for i in ids) or len(set(ids)) != n_objects:
        raise ValueError(f'object ids must be distinct values in 1..255, got {ids}')
    min_px = max(8, int(min_visible * height * width))
    for _ in range(max_tries):
        out = _render(rng, frames, height, width, ids, enter, speed, noise, drift)
        if all(enter[k] >= frames or (out[1][enter[k]] == ids[k]).sum() >= min_px
               for k in range(n_objects)):
            break
    return out


def _render(rng, frames, height, width, ids, enter, speed, noise, appear=0.0):
    n = len(ids)
    # background: a larger texture cropped by a slowly drifting window
    drift = rng.uniform(-0.004, 0.004, 2) * np.array([width, height]) * speed
    margin = int(np.ceil(np.abs(drift).max() * frames)) + 2
    bg = _make_background(rng, height + 2 * margin, width + 2 * margin)
    objs = [_Object(rng, height, width, enter[k], speed, appear) for k in range(n)]
    order = rng.permutation(n)                                     # z-order, back to front
    flip_at = int(rng.integers(frames // 3, 2 * frames // 3 + 1)) if appear > 0 else frames
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    brightness = rng.uniform(-6, 6)
    imgs, masks = [], []
    for t in range(frames):
        off = np.round(margin + drift * t).astype(int)
        img = bg[off[1]:off[1] + height, off[0]:off[0] + width].copy()
        mask = np.zeros((height, width), np.uint8)
        for k in (order if t < flip_at else order[::-1]):
            o = objs[k]
            if t < o.enter:
                continue
            inside, colour = o.render(t - o.enter, xx, yy)
            img[inside] = colour[inside]
            mask[inside] = ids[k]
        flicker = brightness * np.sin(0.3 * t * speed)
        img = img + flicker + rng.normal(0, noise, img.shape)
        imgs.append(np.clip(np.round(img), 0, 255).astype(np.uint8))
        masks.append(mask)
        for o in objs:
            if t >= o.enter:
                o.step(rng)
    return imgs, masks
