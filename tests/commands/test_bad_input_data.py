"""Bad input in the data: folders, lists, split JSONs, frames, masks, labels, frame names."""
import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image

import eval_davis
import eval_generic
import eval_youtube_phase2
import train
from helpers import (REPO, davis_args, expect, no_run, refused, run_cli, train_flags, tree,
                     truncate)
from phase2_scripts import prepare_sparse_gt
from util.errors import UserError, run_main
from util.image_io import DAVIS_PALETTE, read_mask, write_mask

H, W = 32, 48                       # the frame size of the `pristine` trees
pytestmark = pytest.mark.usefixtures('one_thread')


def labeled_masks(d):
    """Paths of every labeled mask of the two splits."""
    out = []
    for split, gt in ((d['d_split'], d['d_gt']), (d['y_split'], d['y_gt'])):
        for v, names in json.load(open(split)).items():
            out += [gt / v / n.replace('.jpg', '.png') for n in names]
    return out


def _with_split(d, key, content):
    path = d['tmp'] / f'{key}_split.json'
    path.write_text(json.dumps(content))
    return str(path)


def _renumber_unpadded(folders):
    """00000.jpg, 00001.jpg, 00002.jpg ... -> 0.jpg, 5.jpg, 10.jpg (string order differs)."""
    for folder in folders:
        for i, p in enumerate(sorted(folder.iterdir())):
            p.rename(p.with_name(f'{5 * i}{p.suffix}'))


# ---------------------------------------------------------------------- folders, lists

def test_davis_and_youtube_paths_from_one_layout(data, ckpt, capsys):
    """train.py, eval_youtube_phase2.py and check_dataset read DAVIS / YouTube where
    util.layout says, for either spelling of the DAVIS root; a missing part is named."""
    import eval_youtube_phase2
    from scripts.data import check_dataset
    from util import layout
    d = data
    d17 = layout.davis_2017_dir(d['davis'])
    assert layout.davis_2017_dir(d17) == d17 == os.path.join(d['davis'], '2017')
    imageset = layout.davis_imageset(layout.davis_trainval(d17), 2017, 'train')
    sparse = layout.davis_sparse_labels(d17)
    y_frames = layout.youtube_dirs(d['yv'], 'train_480p')[0]
    assert (imageset, y_frames) == (str(d['d_im'].parents[1] / 'ImageSets' / '2017' / 'train.txt'),
                                    str(d['y_im']))
    os.rename(imageset, imageset + '.away')
    os.rename(sparse, sparse + '.away')
    for root in (d['davis'], d17):
        refused(train.main, train_flags(d, '--davis_root', root), capsys, imageset)
        refused(eval_youtube_phase2.main, ['--model', ckpt, '--davis', '--davis_path', root,
                                           '--output', d['tmp'] / 'o'], capsys, sparse)
    assert any(p.startswith(imageset) for p in check_dataset.check_dataset(d['davis'], 'davis'))
    os.rename(imageset + '.away', imageset)
    os.rename(sparse + '.away', sparse)
    os.rename(y_frames, y_frames + '.away')
    refused(train.main, train_flags(d), capsys, y_frames)
    refused(eval_youtube_phase2.main, ['--model', ckpt, '--yv_path', d['yv'], '--reverse',
                                       '--res', '-1', '--output', d['tmp'] / 'o'], capsys,
            y_frames)
    assert any(p.startswith(y_frames) for p in check_dataset.check_dataset(d['yv'], 'youtube'))
    bl = d['tmp'] / 'bl'
    bl.mkdir()
    refused(train.main, train_flags(d, '--stage', '1', '--bl_root', bl), capsys,
            layout.generic_dirs(bl)[0])
    assert not (d['save'].exists() and os.listdir(d['save']))      # the root may be made empty
    assert not (d['tmp'] / 'o').exists()


def test_missing_mask_folder(data, fast_load):
    d = data
    # generic layout: a video without its annotation folder
    gen = d['tmp'] / 'generic'
    shutil.copytree(d['d_im'], gen / 'JPEGImages')
    shutil.copytree(d['d_gt'], gen / 'Annotations')
    shutil.rmtree(gen / 'Annotations' / 'davis_001')
    expect(eval_generic.main, ['--model', 'x', '--data_path', gen, '--output',
                               d['tmp'] / 'o'], gen / 'Annotations' / 'davis_001',
           'annotation folder of this video not found')
    # training (full supervision): a listed video whose mask folder is missing
    shutil.rmtree(d['d_gt'] / 'davis_000')
    expect(train.main, train_flags(d), d['d_gt'] / 'davis_000',
           "mask folder of video 'davis_000' not found")
    assert not (d['tmp'] / 'o').exists() and no_run(d)


def test_lists_and_json_validated_alike_for_training_and_evaluation(data, ckpt, capsys):
    """A list naming a video twice or a video that does not exist, a JSON key given twice,
    an empty meta.json: the same refusal from training, inference and evaluation."""
    import eval_youtube
    from scripts import evaluate as jf
    d = data
    tv = d['d_gt'].parents[1]
    for name in ('train', 'val'):
        lst = tv / 'ImageSets' / '2017' / f'{name}.txt'
        good = lst.read_text()
        video = good.split()[0]
        lst.write_text(good + video + '\n')                      # listed twice
        fn, argv = (train.main, train_flags(d)) if name == 'train' else \
            (eval_davis.main, davis_args(d, d['tmp'] / 'o', model=ckpt))
        refused(fn, argv, capsys, f'{lst}: video {video!r} is listed twice')
        if name == 'val':
            refused(jf.main, ['--gt_path', tv, '--pred_path', d['tmp']], capsys,
                    f'{lst}: video {video!r} is listed twice')
        lst.write_text(good + 'no_such_video\n')                 # a video that does not exist
        refused(fn, argv, capsys, f"{lst}: video 'no_such_video' has no frame folder",
                d['d_im'] / 'no_such_video')
        lst.write_text(good)
    split = d['y_split']
    text = open(split).read()
    key = next(iter(json.load(open(split))))
    with open(split, 'w') as f:                                  # a key twice
        f.write(text.replace('{', '{"%s": ["00000.jpg", "00005.jpg"], ' % key, 1))
    refused(train.main, train_flags(d, '--yv_data', split, '--davis_data', d['d_split']),
            capsys, f'{split}: key {key!r} appears twice')
    meta = d['root'] / 'YouTube' / 'valid' / 'meta.json'
    meta.write_text('{"videos": {}}')
    refused(eval_youtube.main, ['--model', ckpt, '--yv_path', d['yv'], '--output',
                                d['tmp'] / 'o'], capsys, f'{meta}: lists no videos')
    assert not (d['tmp'] / 'o').exists()
    # frames of different sizes in one training video, as inference refuses them
    from PIL import Image
    odd = d['y_im'] / 'yt_train_000' / '00010.jpg'
    Image.new('RGB', (W, H + 16)).save(odd)
    refused(train.main, train_flags(d), capsys, f'{odd}: frame size {W}x{H + 16} differs from '
                                                'the first frame of the video')
    assert not d['save'].exists() or not os.listdir(d['save'])


# ---------------------------------------------------------------------- split JSONs

def test_split_names_missing_video(data, fast_load):
    d = data
    split = json.load(open(d['y_split']))
    split['ghost'] = ['00000.jpg', '00005.jpg']
    bad = _with_split(d, 'yv', split)
    flags = train_flags(d, two_shot=True)
    flags[flags.index(d['y_split'])] = bad
    expect(train.main, flags, bad, "video 'ghost' has no frame folder", d['y_im'] / 'ghost')
    expect(prepare_sparse_gt.main, ['--annotations', d['y_gt'], '--split', bad, '--out',
                                    d['tmp'] / 'sparse'], bad, "video 'ghost' has no folder")
    expect(eval_youtube_phase2.main, ['--model', 'x', '--yv_path', d['yv'], '--res', '-1',
                                      '--output', d['tmp'] / 'o', '--data_file', bad], bad,
           "video 'ghost' has no frame folder")
    assert not (d['tmp'] / 'sparse').exists() and not (d['tmp'] / 'o').exists()
    assert no_run(d)


def test_split_names_missing_frame(data, fast_load):
    d = data
    split = json.load(open(d['y_split']))
    v = next(iter(split))
    split[v] = [split[v][0], '00095.jpg']
    bad = _with_split(d, 'yv', split)
    flags = train_flags(d, two_shot=True)
    flags[flags.index(d['y_split'])] = bad
    expect(train.main, flags, bad, f"video '{v}': labeled frame '00095' has no image")
    expect(prepare_sparse_gt.main, ['--annotations', d['y_gt'], '--split', bad, '--out',
                                    d['tmp'] / 'sparse'], bad, "frame '00095.jpg'",
           'missing mask')
    expect(eval_youtube_phase2.main, ['--model', 'x', '--yv_path', d['yv'], '--res', '-1',
                                      '--output', d['tmp'] / 'o', '--data_file', bad], bad,
           "labeled frame '00095' has no image")
    # a frame with an image but no mask
    split[v] = [split[v][0], '00010.jpg']
    os.remove(d['y_gt'] / v / '00010.png')
    bad = _with_split(d, 'yv2', split)
    flags[flags.index(str(d['tmp'] / 'yv_split.json'))] = bad
    expect(train.main, flags, bad, "labeled frame '00010' has no mask",
           d['y_gt'] / v / '00010.png')
    expect(eval_youtube_phase2.main, ['--model', 'x', '--yv_path', d['yv'], '--res', '-1',
                                      '--output', d['tmp'] / 'o', '--data_file', bad], bad,
           "labeled frame '00010' has no mask")
    assert not (d['tmp'] / 'sparse').exists() and not (d['tmp'] / 'o').exists()


# ---------------------------------------------------------------------- frames, masks

def test_mask_size_differs_from_frame(data, fast_load):
    d = data
    bad = d['d_gt'] / 'davis_001' / '00000.png'
    write_mask(bad, np.ones((H - 4, W), np.uint8))
    out = d['tmp'] / 'out'
    expect(eval_davis.main, davis_args(d, out), bad, f'mask size {W}x{H - 4} differs from its '
           f'frame ({W}x{H})')
    assert not out.exists()
    # training: every labeled mask of the split the wrong size -> the first sample fails
    for p in labeled_masks(d):
        write_mask(p, np.ones((H, W + 8), np.uint8))
    msg = expect(train.main, train_flags(d, two_shot=True), 'differs from its frame',
                 f'mask size {W + 8}x{H}')
    assert '.png' in msg
    assert no_run(d)                           # the run folder of the failed start is removed


def test_truncated_jpeg_and_corrupt_png(data, pristine, fast_load):
    d = data
    frame = d['d_im'] / 'davis_001' / '00002.jpg'
    truncate(frame)
    out = d['tmp'] / 'out'
    expect(eval_davis.main, davis_args(d, out), frame, 'cannot read image', 'truncated')
    assert not out.exists()
    shutil.copy(pristine / frame.relative_to(d['root']), frame)        # repaired
    png = d['d_gt'] / 'davis_001' / '00000.png'
    png.write_bytes(b'\x89PNG\r\n\x1a\n' + os.urandom(200))
    expect(eval_davis.main, davis_args(d, out), png, 'cannot read image')
    assert not out.exists()


def test_nothing_sets_load_truncated_images():
    """A truncated image must fail: no project module may switch PIL's global flag on."""
    from PIL import ImageFile
    import dataset.davis_test_dataset  # noqa: F401
    import dataset.generic_test_dataset  # noqa: F401
    import dataset.yv_test_dataset  # noqa: F401
    import phase2.passes_dataset  # noqa: F401
    import dataset.vos_dataset  # noqa: F401
    import model.trainer  # noqa: F401
    import scripts.data.check_dataset  # noqa: F401
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    offenders = []
    for folder, dirs, files in os.walk(REPO):
        dirs[:] = [x for x in dirs if not x.startswith('.') and x != 'tests']
        for f in files:
            if f.endswith('.py'):
                text = open(os.path.join(folder, f), encoding='utf-8').read()
                if 'LOAD_TRUNCATED_IMAGES = True' in text or 'LOAD_TRUNCATED_IMAGES=True' in text:
                    offenders.append(f)
    assert not offenders
    # and util.files turns it back off if a third-party library switched it on
    from util.image_io import read_frame
    ImageFile.LOAD_TRUNCATED_IMAGES = True
    try:
        with pytest.warns(RuntimeWarning, match='LOAD_TRUNCATED_IMAGES'):
            with pytest.raises(UserError):
                read_frame('/nonexistent/x.jpg')
        assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = False


def test_rgb_mask_accepted_when_unambiguous_else_explained(data, fast_load):
    d = data
    ann = d['d_gt'] / 'davis_001' / '00000.png'
    ids = read_mask(ann)
    assert len(np.unique(ids)) >= 2
    out_p, out_rgb = d['tmp'] / 'palette', d['tmp'] / 'rgb'
    eval_davis.main(davis_args(d, out_p))
    Image.fromarray(DAVIS_PALETTE[ids]).save(ann)              # the same ids as RGB colours
    assert Image.open(ann).mode == 'RGB'
    eval_davis.main(davis_args(d, out_rgb))
    names = sorted(os.listdir(out_p / 'davis_001'))
    assert names == sorted(os.listdir(out_rgb / 'davis_001')) and len(names) == 4
    for n in names:
        assert np.array_equal(read_mask(out_p / 'davis_001' / n),
                              read_mask(out_rgb / 'davis_001' / n))
    # a colour outside the palette cannot be mapped to an id: explained, nothing written
    rgb = DAVIS_PALETTE[ids].copy()
    rgb[:3, :3] = (12, 200, 77)
    Image.fromarray(rgb).save(ann)
    out_bad = d['tmp'] / 'bad'
    expect(eval_davis.main, davis_args(d, out_bad), ann, 'RGB mask with colour (12, 200, 77)',
           'not in the palette', '8-bit palette PNG')
    assert not out_bad.exists()
    # the sparse-label tool reads the labeled masks too
    v, names = next(iter(json.load(open(d['d_split'])).items()))
    lab = d['d_gt'] / v / names[0].replace('.jpg', '.png')
    rgb = DAVIS_PALETTE[read_mask(lab)].copy()
    rgb[0, 0] = (1, 2, 3)
    Image.fromarray(rgb).save(lab)
    expect(prepare_sparse_gt.main, ['--annotations', d['d_gt'], '--split', d['d_split'],
                                    '--out', d['tmp'] / 'sparse'], lab, 'not in the palette')
    assert not (d['tmp'] / 'sparse').exists()


def test_mask_must_be_a_png_and_frames_of_any_mode_read_as_8bit_rgb(data, ckpt, capsys):
    from PIL import Image
    from scripts.data import check_dataset
    from util.image_io import read_frame
    d = data
    # a 16-bit grey frame reads as its 8-bit grey, not all white
    frame = d['d_im'] / 'davis_001' / '00001.jpg'
    grey8 = np.asarray(Image.open(frame).convert('L'))
    g16 = d['tmp'] / 'g16.png'
    Image.fromarray(grey8.astype(np.uint16) * 257).save(g16)
    assert Image.open(g16).mode.startswith('I;16')
    assert (read_frame(str(g16)) == grey8[..., None]).all()
    for mode in ('CMYK', 'LA', 'P', 'I'):
        img = Image.open(frame).convert('L' if mode in ('LA', 'I') else 'RGB').convert(mode)
        img.save(d['tmp'] / f'm.{"tif" if mode == "I" else "png" if mode != "CMYK" else "jpg"}')
    assert np.abs(read_frame(str(d['tmp'] / 'm.jpg')).astype(int)
                  - np.asarray(Image.open(frame).convert('RGB')).astype(int)).mean() < 8
    assert (read_frame(str(d['tmp'] / 'm.png')) == np.asarray(
        Image.open(d['tmp'] / 'm.png').convert('RGB'))).all()
    assert (read_frame(str(d['tmp'] / 'm.tif')) == grey8[..., None]).all()
    # a float frame cannot be read as RGB: refused by name (TIFF data under a .jpg name)
    bad_frame = d['d_im'] / 'davis_001' / '00002.jpg'
    Image.fromarray(np.zeros((H, W), np.float32)).save(bad_frame, format='TIFF')
    out = d['tmp'] / 'o'
    refused(eval_davis.main, davis_args(d, out, model=ckpt), capsys,
            f'{bad_frame}: frame mode F is not supported')
    assert not out.exists()
    # a JPEG stream saved as the first-frame .png annotation
    gt = d['d_gt'] / 'davis_001' / '00000.png'
    Image.open(gt).convert('RGB').save(gt, format='JPEG')
    shutil.copyfile(d['d_im'] / 'davis_000' / '00002.jpg', bad_frame)
    refused(eval_davis.main, davis_args(d, out, model=ckpt), capsys,
            f'{gt}: not a PNG file (JPEG data)')
    assert not out.exists()
    Image.fromarray(np.zeros((H, W), np.float32)).save(bad_frame, format='TIFF')
    with pytest.raises(SystemExit) as e:
        run_main(check_dataset.main, ['--root', d['davis'], '--layout', 'davis'])
    report = capsys.readouterr().out
    assert e.value.code == 1
    assert f'{gt}: not a PNG file (JPEG data)' in report
    assert f'{bad_frame}: frame mode F is not supported' in report


# ---------------------------------------------------------------------- labels

def test_labeled_frame_with_no_object(data, fast_load):
    d = data
    first = d['d_gt'] / 'davis_001' / '00000.png'
    write_mask(first, np.zeros((H, W), np.uint8))
    out = d['tmp'] / 'out'
    expect(eval_davis.main, davis_args(d, out), first, 'first-frame annotation holds no object')
    assert not out.exists()
    for p in labeled_masks(d):
        write_mask(p, np.zeros((H, W), np.uint8))
    expect(prepare_sparse_gt.main, ['--annotations', d['d_gt'], '--split', d['d_split'],
                                    '--out', d['tmp'] / 'sparse'], 'holds no object',
           d['d_split'])
    assert not (d['tmp'] / 'sparse').exists()
    msg = expect(train.main, train_flags(d, two_shot=True), 'holds no object',
                 'labeled frame of')
    assert '.png' in msg and ('davis_rand_2frames.json' in msg or 'yv_rand_2frames.json' in msg)
    assert no_run(d)


# ---------------------------------------------------------------------- frame order

def test_one_frame_order_everywhere_and_duplicate_stems_refused(data, ckpt, capsys):
    """Names that are not zero-padded ('5' < '10'): every command orders by number, so the
    evaluation, inference and training agree on the first frame and the temporal order."""
    from util import metrics
    from util.layout import sort_frames
    from dataset.vos_dataset import VOSDataset
    d = data
    assert sort_frames(['10.jpg', '9.jpg', 'a2.png', 'a10.png', '00003.jpg']) == \
        ['00003.jpg', '9.jpg', '10.jpg', 'a2.png', 'a10.png']
    vids = [p for p in d['d_im'].iterdir()] + [p for p in d['d_gt'].iterdir()]
    _renumber_unpadded(vids)
    # the ground truth as prediction, with frame 5 (the second in time) emptied: in time
    # order 5 is an evaluated frame (J 0); in string order (0, 10, 15, 5) it would be the last
    pred = d['tmp'] / 'pred'
    shutil.copytree(d['d_gt'], pred)
    from util.image_io import write_mask
    for v in pred.iterdir():
        write_mask(v / '5.png', np.zeros((H, W), np.uint8))
    res = metrics.evaluate(d['davis'] + '/2017/trainval', pred, progress=False, verbose=False)
    assert all(j[0] == 0 and j[1] == 1 for j in res['J'].values())
    out = d['tmp'] / 'o'
    run_main(eval_davis.main, [str(a) for a in davis_args(d, out, model=ckpt)])
    assert sorted(p.name for p in (out / 'davis_001').iterdir()) == \
        sorted(p.name for p in (d['d_gt'] / 'davis_001').iterdir())
    ds = VOSDataset(str(d['d_im']), str(d['d_gt']), max_jump=1)
    assert [f for f in ds.frames[ds.videos[0]]] == ['0.jpg', '5.jpg', '10.jpg', '15.jpg']
    # a frame with two files
    dup = d['d_im'] / 'davis_001' / '5.png'
    shutil.copyfile(d['d_gt'] / 'davis_001' / '5.png', dup)
    shutil.rmtree(out)
    refused(eval_davis.main, davis_args(d, out, model=ckpt), capsys,
            f'{d["d_im"] / "davis_001" / "5.jpg"}: frame 5 has 2 files (5.jpg, 5.png)')
    assert not out.exists()
    from scripts.data import check_dataset
    with pytest.raises(SystemExit) as e:
        run_main(check_dataset.main, ['--root', d['davis'], '--layout', 'davis'])
    assert e.value.code == 1
    assert 'frame 5 has 2 files' in capsys.readouterr().out


def test_visualize_and_prepare_youtube_share_the_frame_layout(data, capsys):
    """scripts.visualize and scripts.data.prepare_youtube list, order and identify frames as every other
    command does: numeric order, and a frame with two files refused before any output."""
    from scripts import visualize
    from scripts.data import prepare_youtube
    d = data
    video = d['y_im'] / sorted(os.listdir(d['y_im']))[0]
    _renumber_unpadded([video, d['y_gt'] / video.name])
    assert visualize._frame_names(video.name, str(video)) == ['0.jpg', '5.jpg', '10.jpg',
                                                              '15.jpg']
    assert [p[3] for p in prepare_youtube._plan(str(d['y_im'].parent), str(d['tmp']),
                                                video.name)] == \
        [['0.jpg', '5.jpg', '10.jpg', '15.jpg'], ['0.png', '5.png', '10.png', '15.png']]
    shutil.copyfile(video / '5.jpg', video / '5.png')
    (video / 'notes.txt').write_text('not a frame')
    before = tree(d['root'])
    sheet, prep = d['tmp'] / 'sheet.png', d['tmp'] / 'prep'
    refused(visualize.main, ['--frames', video, '--masks', d['y_gt'] / video.name,
                             '--out', sheet], capsys,
            f'{video / "5.jpg"}: frame 5 has 2 files (5.jpg, 5.png); keep one per frame')
    refused(prepare_youtube.main, ['--src', d['y_im'].parent, '--out', prep, '--size', '16',
                                   '--workers', '1'], capsys,
            f'{video / "5.jpg"}: frame 5 has 2 files (5.jpg, 5.png); keep one per frame')
    assert tree(d['root']) == before
    assert not sheet.exists() and not prep.exists()


# ---------------------------------------------------------------------- inputs first

def test_every_video_checked_before_the_first_output(data, ckpt, capsys):
    """A broken video late in the list fails the run before the earlier videos are written."""
    from PIL import Image
    import eval_generic
    d = data
    imageset = d['d_gt'].parents[1] / 'ImageSets' / '2017' / 'val.txt'
    imageset.write_text('davis_000\ndavis_001\n')
    out = d['tmp'] / 'o'
    late = d['d_im'] / 'davis_001'
    frame = late / '00003.jpg'
    Image.new('RGB', (W + 8, H)).save(frame)                     # another size
    refused(eval_davis.main, davis_args(d, out, model=ckpt), capsys,
            f'{frame}: frame size {W + 8}x{H} differs from the first frame')
    assert not out.exists()
    shutil.copyfile(d['d_im'] / 'davis_000' / '00003.jpg', frame)
    first = d['d_gt'] / 'davis_001' / '00000.png'
    first.unlink()                                               # first-frame label missing
    refused(eval_davis.main, davis_args(d, out, model=ckpt), capsys, f'{first}: file not found')
    assert not out.exists()
    for p in late.iterdir():                                     # an empty frame folder
        p.unlink()
    refused(eval_davis.main, davis_args(d, out, model=ckpt), capsys, f'{late}: no frames')
    assert not out.exists()
    # the generic layout: a video whose labels hold no object, after a good one
    gen = d['tmp'] / 'generic'
    shutil.copytree(d['y_im'].parent, gen)
    good = gen / 'JPEGImages' / 'yt_train_000'
    shutil.copytree(good, gen / 'JPEGImages' / 'zz_late')
    (gen / 'Annotations' / 'zz_late').mkdir()
    from util.image_io import write_mask
    write_mask(gen / 'Annotations' / 'zz_late' / '00000.png', np.zeros((H, W), np.uint8))
    refused(eval_generic.main, ['--model', ckpt, '--data_path', gen, '--output', out], capsys,
            f'{gen / "Annotations" / "zz_late"}: no labeled frame with an object')
    assert not out.exists()


# ---------------------------------------------------------------------- merge, evaluation

def test_merge_knows_every_frame(data, capsys):
    """A frame missing from every pass is an error naming video and frame, also without
    --frames_dir (the frames folder beside phase2/ is used), not a frame left out of the
    bank; where no frames folder can be derived, --frames_dir is asked for."""
    from phase2.merge import PASS_NAMES
    from phase2_scripts import merge_left_right
    d = data
    sparse = d['root'] / 'YouTube' / 'phase2' / 'yv_gt_480p'
    passes = {n: d['tmp'] / n for n in PASS_NAMES}
    for p in passes.values():
        shutil.copytree(d['y_gt'], p)                    # every pass holds every frame
    labeled = sorted(p.stem for p in (sparse / 'yt_train_000').iterdir())   # 00005, 00010
    last = passes['leftsecgt'] / 'yt_train_000' / '00015.png'
    for p in passes.values():                        # the last frame: in no pass at all
        (p / 'yt_train_000' / '00015.png').unlink()
    out = d['tmp'] / 'bank'
    argv = ['--gt_dir', sparse] + sum(([f'--{n}', p] for n, p in passes.items()), []) + \
        ['--out', out]
    assert labeled == ['00005', '00010']
    refused(merge_left_right.main, argv, capsys, 'pass leftsecgt: video yt_train_000',
            f'missing frame file {last}')
    assert not out.exists()
    refused(merge_left_right.main, argv + ['--frames_dir', d['y_im']], capsys, f'{last}')
    assert not out.exists()
    elsewhere = d['tmp'] / 'sparse'
    shutil.copytree(sparse, elsewhere)
    refused(merge_left_right.main, ['--gt_dir', elsewhere] + argv[2:], capsys,
            f'{elsewhere}: cannot tell where the frames', 'give --frames_dir')
    assert 'frames_dir "$FRAMES"' in open(os.path.join(REPO, 'run_intermediate.sh')).read()


def test_evaluation_errors_name_the_right_file(data, capsys):
    from PIL import Image
    from scripts import evaluate as jf
    from util import metrics
    from util.image_io import write_mask
    d = data
    gt_root = d['tmp'] / 'gt'
    shutil.copytree(d['d_gt'], gt_root)
    pred = d['tmp'] / 'pred'
    shutil.copytree(d['d_gt'], pred)
    argv = ['--gt_path', gt_root, '--pred_path', pred]
    # a sequence of 2 frames is reported and excluded; the global row stays a number
    short = gt_root / 'davis_000'
    for p in sorted(short.iterdir())[2:]:
        p.unlink()
    capsys.readouterr()
    res = metrics.evaluate(gt_root, pred, progress=False, verbose=False)
    assert res['excluded'] == ['davis_000'] and res['J&F-Mean'] == pytest.approx(1.0)
    assert f'note: {short}: fewer than 3 ground-truth frames' in capsys.readouterr().out
    for p in pred.glob('*.csv'):
        p.unlink()
    # a ground-truth frame of another size names the ground-truth file
    odd = gt_root / 'davis_001' / '00002.png'
    write_mask(odd, np.zeros((H + 2, W), np.uint8))
    refused(jf.main, argv, capsys, f'{odd}: ground-truth size {W}x{H + 2} differs from the '
                                   'first frame 00000.png')
    # with --workers the same one line, from a pool worker, and no traceback
    r = run_cli(['-m', 'scripts.evaluate'] + argv + ['--workers', '2'])
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith('error')]
    assert r.returncode == 2 and len(lines) == 1 and str(odd) in lines[0], r.stderr
    assert 'Traceback' not in r.stderr + r.stdout
    write_mask(odd, np.asarray(Image.open(pred / 'davis_001' / '00002.png')))
    # the first ground-truth frame missing, or holding no object
    first = gt_root / 'davis_001' / '00000.png'
    first.unlink()
    refused(jf.main, argv, capsys, f'{first}: missing: the prediction starts at frame 00000')
    write_mask(first, np.zeros((H, W), np.uint8))
    refused(jf.main, argv, capsys, f'{first}: the first ground-truth frame holds no object')
    assert not list(pred.glob('*.csv'))
