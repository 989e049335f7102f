"""eval_youtube.py's benchmark follows STCN's protocol and resize (docs/method.md, "Inference").

A reference of STCN's pipeline is written here with torchvision: every frame of
all_frames/valid_all_frames, ToTensor -> Normalize -> Resize(res, BICUBIC) of the normalised
tensor (no antialiasing, as the paper's torchvision), one-hot labels -> Resize(res, NEAREST),
propagation from each labeled frame up to the next one, probabilities resized back bilinearly,
and only the meta.json frames from the first label on written. The script's outputs must be
that set of files with >= 99.9 % equal pixels, for frames smaller than, equal to and larger
than the working resolution.
"""
import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

import eval_youtube
import eval_youtube_phase2
from dataset.eval_dataset import load_frames, load_mask, resize_frame, working_size
from helpers import make_scene, write_frames
from inference_core import InferenceConfig, InferenceCore
from util.image_io import read_mask, write_mask
from scripts.data.synthetic_data import generate

pytestmark = pytest.mark.usefixtures('one_thread')

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@pytest.fixture(scope='module')
def sharp_ckpt(tmp_path_factory, net):
    """The seeded network with its mask channels sharpened, so that masks follow the labels
    and their edges move with the resize."""
    import copy
    sharp = copy.deepcopy(net)
    with torch.no_grad():
        sharp.value_encoder.conv1.weight[:, 3:] *= 100
    path = tmp_path_factory.mktemp('sharp') / 'stcn.pth'
    torch.save(sharp.state_dict(), path)
    return str(path), sharp


def torchvision_transforms(res):
    from torchvision import transforms
    from torchvision.transforms import InterpolationMode
    im = transforms.Compose([transforms.ToTensor(), transforms.Normalize(MEAN, STD),
                             transforms.Resize(res, InterpolationMode.BICUBIC, antialias=False)])
    return im, transforms.Resize(res, InterpolationMode.NEAREST)


def stcn_reference(net, yv_root, out_root, res, mem_every=5):
    """STCN's eval_youtube.py pipeline on <yv_root>/valid; returns the frames it segmented."""
    image_dir = os.path.join(yv_root, 'all_frames', 'valid_all_frames', 'JPEGImages')
    mask_dir = os.path.join(yv_root, 'valid', 'Annotations')
    with open(os.path.join(yv_root, 'valid', 'meta.json')) as f:
        meta = json.load(f)['videos']
    im_tf, mask_tf = torchvision_transforms(res)
    segmented = 0
    for vid in sorted(os.listdir(image_dir)):
        files = sorted(os.listdir(os.path.join(image_dir, vid)))
        rgb = torch.stack([im_tf(Image.open(os.path.join(image_dir, vid, f)).convert('RGB'))
                           for f in files])                               # [T, 3, h, w]
        size = Image.open(os.path.join(image_dir, vid, files[0])).size[::-1]
        raw, gt_obj = [], {}
        for i, f in enumerate(files):
            png = os.path.join(mask_dir, vid, f.replace('.jpg', '.png'))
            if os.path.exists(png):
                raw.append(np.array(Image.open(png).convert('P')))
                gt_obj[i] = [int(o) for o in np.unique(raw[-1]) if o]
            else:
                raw.append(np.zeros(size, np.uint8))
        raw = np.stack(raw)
        ids = [int(o) for o in np.unique(raw) if o]
        onehot = mask_tf(torch.from_numpy(np.stack([raw == o for o in ids])).float())
        listed = {n for o in meta[vid]['objects'].values() for n in o['frames']}
        req = [i for i, f in enumerate(files) if f[:-4] in listed]
        core = InferenceCore(net, rgb[None], len(ids), InferenceConfig(
            top_k=20, mem_every=mem_every, mem_style='youtube'), req_frames=req)
        labeled = sorted(gt_obj)
        for j, fi in enumerate(labeled):
            end = labeled[j + 1] + 1 if j + 1 < len(labeled) else len(files)
            core.interact(onehot[:, fi][:, None], fi, end,
                          [ids.index(o) + 1 for o in gt_obj[fi]])
        segmented += core.processed
        lut = np.asarray([0] + ids, np.uint8)
        for fi in range(labeled[0], len(files)):
            if fi in req:
                write_mask(os.path.join(out_root, 'Annotations', vid,
                                        files[fi].replace('.jpg', '.png')),
                           lut[core.get_mask(fi, size)])
    return segmented


def png_tree(root):
    return sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root)
                  for f in fs if f.endswith('.png'))


def agreement(a_root, b_root, files):
    same = total = 0
    for f in files:
        a, b = read_mask(os.path.join(a_root, f)), read_mask(os.path.join(b_root, f))
        same, total = same + int((a == b).sum()), total + a.size
    return same / total


# ---------------------------------------------------------------------- the resize

@pytest.mark.parametrize('h, w, res', [(240, 432, 480), (600, 800, 480), (480, 854, 480),
                                       (37, 64, 48)])
def test_frame_resize_is_torchvisions_tensor_resize(h, w, res):
    """resize_frame of a normalised frame == torchvision's Resize(res, BICUBIC) on the tensor
    without antialiasing, bitwise (what the paper's torchvision did); the installed
    torchvision's default (antialias=True) differs, enlarging or shrinking."""
    from torchvision import transforms
    from torchvision.transforms import InterpolationMode
    frame = torch.randn(3, h, w)
    ours = resize_frame(frame, working_size(h, w, res))
    ref = transforms.Resize(res, InterpolationMode.BICUBIC, antialias=False)(frame)
    assert ours.shape == ref.shape and torch.equal(ours, ref)
    if min(h, w) != res:
        smooth = transforms.Resize(res, InterpolationMode.BICUBIC)(frame)     # 0.17+ default
        assert not torch.allclose(ours, smooth, atol=1e-3)


@pytest.mark.parametrize('h, w', [(40, 72), (64, 112), (96, 128)])
def test_loaded_frames_and_labels_are_stcns(tmp_path, h, w):
    """load_frames / load_mask at res 64 == STCN's transforms on the same files: frames
    normalised then resized (bicubic, on the tensor), labels one-hot then tensor-nearest."""
    frames, masks = make_scene(2, {3: (0, (h // 4, w // 4), (1, 1), (h // 3, w // 3)),
                                   7: (0, (h // 2, w // 2), (0, 0), (h // 4, w // 5))}, h, w)
    write_frames(str(tmp_path), ['a', 'b'], frames)
    write_mask(str(tmp_path / 'a.png'), masks[0])
    im_tf, mask_tf = torchvision_transforms(64)
    images, size = load_frames(str(tmp_path), ['a.jpg', 'b.jpg'], res=64)
    ref = torch.stack([im_tf(Image.open(tmp_path / n).convert('RGB')) for n in ('a.jpg', 'b.jpg')])
    assert size == (h, w) and torch.equal(images, ref)
    mask = load_mask(str(tmp_path / 'a.png'), size, images.shape[-2:])
    onehot = mask_tf(torch.from_numpy(np.stack([masks[0] == o for o in (3, 7)])).float())
    ref_mask = (onehot * torch.tensor([3., 7.])[:, None, None]).sum(0).to(torch.uint8).numpy()
    assert np.array_equal(mask, ref_mask)


# ---------------------------------------------------------------------- the benchmark run

def run_both(tmp_path, ckpt, h, w, res, frames=3, val_videos=2):
    path, net = ckpt
    yv = generate(tmp_path / 'data', 'youtube', videos=1, frames=frames, height=h, width=w,
                  objects=2, seed=4, val_videos=val_videos)['root']
    ours, ref = str(tmp_path / 'ours'), str(tmp_path / 'ref')
    stats = eval_youtube.main(['--model', path, '--yv_path', yv, '--output', ours, '--res',
                               str(res), '--device', 'cpu'])
    segmented = stcn_reference(net, yv, ref, res)
    return ours, ref, stats, segmented


@pytest.mark.parametrize('h, w', [(40, 72), (64, 112), (96, 128)])
def test_default_benchmark_is_stcns(tmp_path, sharp_ckpt, h, w):
    """Frames smaller than, at and larger than --res 64: STCN's files, STCN's frames segmented,
    >= 99.9 % of STCN's pixels."""
    ours, ref, stats, segmented = run_both(tmp_path, sharp_ckpt, h, w, 64)
    files = png_tree(ref)
    assert files and png_tree(ours) == files
    assert stats['frames'] == segmented
    assert agreement(ours, ref, files) >= 0.999


@pytest.mark.slow
@pytest.mark.parametrize('h, w', [(240, 432), (480, 640), (600, 800)])
def test_default_benchmark_is_stcns_at_480p(tmp_path, sharp_ckpt, h, w):
    """The same at the default --res 480 (frames below, at and above 480p), on one video of 6
    frames (listed: 00000, 00005)."""
    ours, ref, stats, segmented = run_both(tmp_path, sharp_ckpt, h, w, 480, frames=2,
                                           val_videos=1)
    files = png_tree(ref)
    assert files and png_tree(ours) == files
    assert stats['frames'] == segmented
    assert agreement(ours, ref, files) >= 0.999


def valid_tree(root):
    """valid: 21 frames, annotated every 5th; object 1 first labeled on 00005, object 4 on
    00010; meta.json lists the annotated frames where each object is."""
    frames, masks = make_scene(21, {1: (5, (4, 4), (1, 1), (16, 20)),
                                    4: (10, (30, 50), (0, -1), (14, 18))}, h=48, w=80)
    names = [f'{i:05d}' for i in range(21)]
    write_frames(os.path.join(root, 'all_frames', 'valid_all_frames', 'JPEGImages', 'v'),
                 names, frames)
    write_frames(os.path.join(root, 'valid', 'JPEGImages', 'v'), names[::5], frames[::5])
    ann = os.path.join(root, 'valid', 'Annotations', 'v')
    write_mask(os.path.join(ann, '00005.png'), np.where(masks[5] == 1, 1, 0))
    write_mask(os.path.join(ann, '00010.png'), np.where(masks[10] == 4, 4, 0))
    meta = {'videos': {'v': {'objects': {'1': {'category': 'a', 'frames': names[5::5]},
                                         '4': {'category': 'b', 'frames': names[10::5]}}}}}
    with open(os.path.join(root, 'valid', 'meta.json'), 'w') as f:
        json.dump(meta, f)


@pytest.mark.parametrize('flags, written, segmented', [
    ([], [5, 10, 15, 20], 4),                    # labels 5, 10; 15 (memory), 20
    (['--output_all'], list(range(5, 21)), 16),  # every frame from the first label
    (['--mem_every', '2'], [5, 10, 15, 20], 10),  # + memory 7 9 12 14 16 18
    (['--sparse_input'], [5, 10, 15, 20], 4),    # valid/JPEGImages only
])
def test_the_files_written(tmp_path, sharp_ckpt, flags, written, segmented):
    """Default: the meta.json frames from the first label on, the frames of all_frames
    segmented as far as memory and outputs need them; --output_all: every frame from the
    first label; --sparse_input: the old input, valid/JPEGImages (every 5th frame)."""
    root = str(tmp_path / 'YouTube')
    valid_tree(root)
    out = str(tmp_path / 'out')
    stats = eval_youtube.main(['--model', sharp_ckpt[0], '--yv_path', root, '--output', out,
                               '--res', '-1', '--device', 'cpu'] + flags)
    assert png_tree(out) == [f'Annotations/v/{i:05d}.png' for i in written]
    assert stats['frames'] == segmented


def test_sparse_input_is_for_the_benchmark(tmp_path):
    with pytest.raises(SystemExit):                 # not a flag of the intermediate inference
        eval_youtube_phase2.main(['--yv_path', str(tmp_path), '--output', str(tmp_path / 'o'),
                                  '--sparse_input'])
