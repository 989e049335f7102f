"""Helpers shared by several test modules: tiny scenes and DAVIS trees, trainer batches, the
bad-input assertions."""
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from dataset.data_mode import data_mode
from model.losses import IGNORE
from model.memory import get_affinity, readout, softmax_topk
from model.trainer import STCNModel
from model.network import VALUE_DIM
from phase2.bank_writer import BankWriter
from util.distributed import DistInfo
from util.errors import UserError, one_line, run_main
from util.hyper_para import HyperParameters
from util.image_io import write_mask

H, W = 60, 90                       # not a multiple of 16: exercises padding


def make_scene(t, objects, h=H, w=W, seed=0):
    """objects: {id: (enter, (y, x), (dy, dx), (oh, ow))} -> frames [t, h, w, 3], masks."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    bg = np.stack([yy * 2, xx * 2, 100 + 0 * yy], -1).astype(np.float32)
    frames, masks = [], []
    for i in range(t):
        img = bg + rng.normal(0, 8, bg.shape)
        mask = np.zeros((h, w), np.uint8)
        for k, (oid, (enter, (y, x), (dy, dx), (oh, ow))) in enumerate(sorted(objects.items())):
            if i < enter:
                continue
            y0, x0 = int(y + dy * (i - enter)), int(x + dx * (i - enter))
            mask[max(y0, 0):y0 + oh, max(x0, 0):x0 + ow] = oid
            img[mask == oid] = (230, 40 + 90 * k, 30 + 60 * k)
        frames.append(np.clip(img, 0, 255).astype(np.uint8))
        masks.append(mask)
    return frames, masks


def write_frames(folder, names, frames):
    os.makedirs(folder, exist_ok=True)
    for n, f in zip(names, frames):
        Image.fromarray(f).save(os.path.join(folder, n + '.jpg'), quality=95)


TWO = {1: (0, (5, 5), (2, 3), (18, 24)), 2: (0, (30, 50), (1, -3), (20, 22))}


def davis_tree(root, videos=('vid_a',), t=6, palette=None):
    tv = os.path.join(root, '2017', 'trainval')
    for j, v in enumerate(videos):
        frames, masks = make_scene(t, TWO, seed=j)
        names = [f'{i:05d}' for i in range(t)]
        write_frames(os.path.join(tv, 'JPEGImages', '480p', v), names, frames)
        for n, m in zip(names, masks):
            write_mask(os.path.join(tv, 'Annotations', '480p', v, n + '.png'), m, palette)
    os.makedirs(os.path.join(tv, 'ImageSets', '2017'), exist_ok=True)
    with open(os.path.join(tv, 'ImageSets', '2017', 'val.txt'), 'w') as f:
        f.write('\n'.join(videos) + '\n')
    return tv


C = 32
# full-label training on synthetic data: its video names are in none of STCN's subset lists
NO_SUBSETS = ['--yv_subset', 'none', '--davis_subset', 'none']


def training_layouts(root, davis_videos, yt_videos, frames, height, width):
    """A DAVIS-layout (one val video) and a YouTube-layout (no val) training set under root,
    2 objects, seed 1: (davis paths, youtube paths) as scripts.data.synthetic_data.generate gives them."""
    from scripts.data.synthetic_data import generate
    kw = dict(frames=frames, height=height, width=width, objects=2, seed=1)
    return (generate(root, 'davis', videos=davis_videos, val_videos=1, **kw),
            generate(root, 'youtube', videos=yt_videos, val_videos=0, **kw))


def make_model(*flags, bank=None):
    para = HyperParameters().parse(['--stage', '3', '--crop_size', str(C), '--log_every', '1000',
                                    '--image_every', '1000', *flags])
    torch.manual_seed(0)
    dist = DistInfo(device=torch.device('cpu'))
    writer = None if bank is None else BankWriter(bank, para['phase2_thres'],
                                                  para['phase2_keep_true_labels'], dist)
    return STCNModel(para, dist, bank_writer=writer)


def step(model, batch, it):
    """model.do_pass in the data mode train.py would give iteration `it`."""
    return model.do_pass(batch, it, data_mode(model.para, it))


def make_batch(labeled=(True, False, True), b=2, second=True):
    g = torch.Generator().manual_seed(3)
    cls = torch.zeros(b, 3, C, C, dtype=torch.long)
    cls[:, :, 4:14, 4:14] = 1
    if second:
        cls[:, :, 18:28, 16:30] = 2
    lab = torch.tensor([labeled] * b)
    cls[~lab] = IGNORE
    return {
        'rgb': torch.randn(b, 3, 3, C, C, generator=g),
        'gt': (cls == 1).float()[:, :, None],
        'sec_gt': (cls == 2).float()[:, :, None],
        'cls_gt': cls,
        'selector': torch.tensor([[1.0, 1.0 if second else 0.0]] * b),
        'labeled': lab,
        'info': {'name': ['vid'] * b, 'frames': [['00000.jpg'] * b, ['00001.jpg'] * b,
                                                 ['00002.jpg'] * b],
                 'target_id': torch.tensor([1] * b), 'second_id': torch.tensor([2] * b)},
    }


class TargetRecorder:
    """Wraps the loss (model.losses.ce) to record the class map it is given for each
    (sample, frame)."""

    def __init__(self, loss_fn):
        self.loss_fn = loss_fn
        self.targets = []

    def __call__(self, logits, target, it):
        self.targets.append(target.clone())
        return self.loss_fn(logits, target, it)

    def frame_targets(self, b):
        """[frame 1 targets [B, H, W], frame 2 targets] of the last do_pass."""
        last = self.targets[-2 * b:]
        return [torch.cat(last[:b]), torch.cat(last[b:])]


def segment_with_query(net, mem_keys, mem_values, qk16, qv16, qf8, qf4, top_k=20):
    """The dense reference of inference: mem_keys [1, 64, N], mem_values [K, 512, N], query
    features of one frame -> object probabilities [K, 1, H, W] of the eval STCN `net`.

    One dense top-k affinity [1, N, hw] shared by all objects, one matmul readout.
    """
    _, _, h, w = qk16.shape
    weights = softmax_topk(get_affinity(mem_keys, qk16.flatten(2)), top_k)  # [1, N, hw]
    k = mem_values.shape[0]
    mem = readout(weights, mem_values.reshape(1, k * VALUE_DIM, -1))       # [1, K*512, hw]
    return net.decode(mem.view(k, VALUE_DIM, h, w), qv16, qf8, qf4)


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def checkout_copy(dest):
    """A copy of this checkout's code, scripts and shipped data at `dest` (no tests, no
    environment, runs or caches): commands that find their folders from where they live run
    there as from a fresh clone."""
    import shutil
    shutil.copytree(REPO, dest, ignore=shutil.ignore_patterns(
        '.git', '.venv', '__pycache__', '.pytest_cache', 'demo_out', 'saves', 'tests', '*.pth'))
    return dest


def refused(main, argv, capsys, *fragments):
    """run_main(main, argv) must exit 2 with one stderr line 'error: ...' holding every
    fragment, and no traceback. Returns the line."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        run_main(main, [str(a) for a in argv])
    out = capsys.readouterr()
    lines = [ln for ln in out.err.splitlines() if ln.strip()]
    assert e.value.code == 2, out.err[-2000:]
    assert lines and lines[-1].startswith('error: '), out.err[-2000:]
    assert [ln for ln in lines if ln.startswith('error')] == lines[-1:]
    assert 'Traceback' not in out.err + out.out
    for f in fragments:
        assert str(f) in lines[-1], (f, lines[-1])
    print(f'[{main.__module__}] {lines[-1]}')
    return lines[-1]


def davis_args(d, out, *extra, model='unused.pth'):
    return [str(a) for a in ('--model', model, '--davis_path', d['davis'], '--output', out,
                             *extra)]


# ---------------------------------------------------------------------- bad-input tests
# (tests/commands/test_bad_input.py, test_bad_input_data.py; their trees: the `data` fixture)

def expect(fn, argv, *fragments):
    """fn(argv) must raise a UserError whose one-line message holds every fragment."""
    with pytest.raises(UserError) as e:
        fn([str(a) for a in argv])
    msg = one_line(e.value)
    print(f'[{fn.__module__}] error: {msg}')          # the report lists these (pytest -s)
    for f in fragments:
        assert str(f) in msg, (f, msg)
    assert '\n' not in msg
    return msg


def train_flags(d, *extra, two_shot=False):
    """train.py flags of a 2-iteration full-label run on the `data` trees (two_shot: the
    labeled-frame splits as well)."""
    f = ['--stage', '3', '--crop_size', '32', '-b', '1', '--num_workers', '0', '-i', '2',
         '--davis_root', d['davis'], '--yv_root', d['yv'], '--save_root', d['save'],
         '--log_every', '1', '--yv_subset', 'none', '--davis_subset', 'none']
    if two_shot:
        f += ['--davis_data', d['d_split'], '--yv_data', d['y_split']]
    return f + list(extra)


def no_run(d):
    """Nothing under --save_root (the root itself may have been created empty)."""
    return not d['save'].exists() or not os.listdir(d['save'])


def tree(folder):
    """{relative path: bytes} of every file under folder."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob('*'))
            if p.is_file()}


def truncate(path, keep=0.5):
    raw = open(path, 'rb').read()
    with open(path, 'wb') as f:
        f.write(raw[:int(len(raw) * keep)])


def _limited_file_size(limit):
    """preexec_fn: files can grow to `limit` bytes (EFBIG beyond, as a full disk fails)."""
    import resource
    import signal

    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def run_cli(args, limit=None, timeout=300):
    """`python ARGS` from the repository root, one thread (limit: the largest file it may
    write, in bytes). Returns the CompletedProcess (text stdout / stderr)."""
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONDONTWRITEBYTECODE='1',
               PYTHONUNBUFFERED='1')
    return subprocess.run([sys.executable] + [str(a) for a in args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout,
                          preexec_fn=_limited_file_size(limit) if limit else None)


def small_trees(root, frames, seed):
    """Synthetic DAVIS (2 videos: 1 train, 1 val) and YouTube (1 train, 1 valid) trees of
    `frames` frames at 32x48 with two objects, under root; returns root."""
    from scripts.data.synthetic_data import generate
    for layout, videos in (('davis', 2), ('youtube', 1)):
        generate(root, layout, videos=videos, frames=frames, height=32, width=48, objects=2,
                 seed=seed, val_videos=1)
    return root
