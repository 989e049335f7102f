"""The DAVIS 2017 semi-supervised J&F (util/metrics.py, docs/method.md "Evaluation") and its
command scripts/evaluate.py."""
import csv
import os

import numpy as np
import pytest

from util.errors import UserError
from scripts.evaluate import main
from util.image_io import write_mask
from util.metrics import (boundary_measure, db_statistics, decay_bounds, evaluate,
                          evaluate_sequence, region_similarity, seg2bmap)

H, W = 40, 48


def square(top, left, size, h=H, w=W, value=1, into=None):
    m = np.zeros((h, w), np.uint8) if into is None else into
    m[top:top + size, left:left + size] = value
    return m


def make_video(n=6, n_obj=2):
    """n index masks [H, W]: object 1 moves right, object 2 moves down."""
    masks = []
    for t in range(n):
        m = square(4, 2 + 2 * t, 10)
        if n_obj > 1:
            square(18 + t, 28, 8, value=2, into=m)
        masks.append(m)
    return masks


def write_tree(root, videos):
    """videos: {name: [masks]} → root/<name>/00000.png ..."""
    for name, masks in videos.items():
        for t, m in enumerate(masks):
            write_mask(os.path.join(root, name, f'{t:05d}.png'), m)


def run_eval(tmp_path, gt_videos, pred_videos, **kw):
    gt, pred = tmp_path / 'gt', tmp_path / 'pred'
    write_tree(gt, gt_videos)
    write_tree(pred, pred_videos)
    kw.setdefault('progress', False)
    kw.setdefault('verbose', False)
    return evaluate(str(gt), str(pred), **kw)


def read_csv(path):
    with open(path, newline='') as f:
        return list(csv.reader(f))


# ----------------------------------------------------------------------------- global measures

def test_perfect_prediction_gives_one_and_zero_decay(tmp_path):
    vids = {'a': make_video(6), 'b': make_video(5, n_obj=1)}
    res = run_eval(tmp_path, vids, vids)
    for k in ['J&F-Mean', 'J-Mean', 'J-Recall', 'F-Mean', 'F-Recall']:
        assert res[k] == pytest.approx(1.0), k
    assert res['J-Decay'] == pytest.approx(0.0)
    assert res['F-Decay'] == pytest.approx(0.0)
    assert [o['Sequence'] for o in res['per_object']] == ['a_1', 'a_2', 'b_1']


def test_empty_prediction_gives_zero(tmp_path):
    vids = {'a': make_video(5)}
    empty = {'a': [np.zeros((H, W), np.uint8)] * 5}
    res = run_eval(tmp_path, vids, empty)
    assert res['J-Mean'] == 0.0
    assert res['J-Recall'] == 0.0
    assert res['F-Mean'] == 0.0          # prediction boundary empty → P=1, R=0 → F=0
    assert res['J&F-Mean'] == 0.0


def test_shifted_square_region_similarity_by_hand():
    gt = square(5, 5, 10)               # rows 5..14, cols 5..14
    pred = square(5, 8, 10)             # shifted 3 px right: cols 8..17
    inter = 10 * 7                      # cols 8..14 overlap on 10 rows
    union = 100 + 100 - inter
    assert region_similarity(gt, pred) == pytest.approx(inter / union)
    assert region_similarity(gt, gt) == 1.0
    assert region_similarity(np.zeros_like(gt), np.zeros_like(gt)) == 1.0   # both empty


def test_shifted_square_through_the_sequence(tmp_path):
    gt = [square(5, 5, 10) for _ in range(4)]
    pred = [square(5, 8, 10) for _ in range(4)]
    res = run_eval(tmp_path, {'v': gt}, {'v': pred})
    assert res['J-Mean'] == pytest.approx(70 / 130)
    assert res['J']['v_1'].shape == (2,)     # 4 frames, first and last left out


def test_region_similarity_void_pixels_left_out():
    gt = square(0, 0, 4, 8, 8)                       # 16 px
    pred = square(0, 0, 4, 8, 8)
    pred[6, 6] = 1                                   # one false positive ...
    void = np.zeros((8, 8), bool)
    assert region_similarity(gt, pred) == pytest.approx(16 / 17)
    void[6, 6] = True                                # ... inside the void region
    assert region_similarity(gt, pred, void) == 1.0


# ----------------------------------------------------------------------------- boundaries

def test_seg2bmap_small_hand_drawn_masks():
    m = np.zeros((5, 5), np.uint8)
    m[1:3, 1:3] = 1
    expected = np.array([[1, 1, 1, 0, 0],
                         [1, 0, 1, 0, 0],
                         [1, 1, 1, 0, 0],
                         [0, 0, 0, 0, 0],
                         [0, 0, 0, 0, 0]], bool)
    np.testing.assert_array_equal(seg2bmap(m), expected)

    # last column: compared with the bottom neighbour only; last row: right neighbour only
    col = np.array([[0, 0, 1], [0, 0, 1], [0, 0, 1]])
    np.testing.assert_array_equal(seg2bmap(col), np.array([[0, 1, 0], [0, 1, 0], [0, 1, 0]], bool))
    row = np.array([[0, 0, 0], [0, 0, 0], [1, 1, 1]])
    np.testing.assert_array_equal(seg2bmap(row), np.array([[0, 0, 0], [1, 1, 1], [0, 0, 0]], bool))


def test_boundary_measure_hand_worked_cases():
    # 100 x 100 image: tolerance = ceil(0.008 * 141.42) = 2 px
    h = w = 100
    gt = square(20, 20, 20, h, w)
    far = square(60, 60, 20, h, w)
    assert boundary_measure(gt, far) == 0.0                        # beyond tolerance
    assert boundary_measure(gt, square(21, 21, 20, h, w)) == 1.0   # 1 px diagonal shift
    assert boundary_measure(gt, gt) == 1.0
    # partial: prediction = the square + a far 5x5 blob. A k x k square's seg2bmap boundary
    # is a (k+1) x (k+1) ring of 4k pixels: 40 matched of 40 + 20 → P = 2/3, R = 1.
    gt10 = square(20, 20, 10, h, w)
    pred = square(70, 70, 5, h, w, into=gt10.copy())
    assert seg2bmap(gt10).sum() == 40 and seg2bmap(square(70, 70, 5, h, w)).sum() == 20
    p, r = 40 / 60, 1.0
    assert boundary_measure(gt10, pred) == pytest.approx(2 * p * r / (p + r))    # 0.8
    # the reverse roles swap precision and recall: same F
    assert boundary_measure(pred, gt10) == pytest.approx(0.8)


def test_boundary_measure_empty_cases():
    z = np.zeros((30, 30), np.uint8)
    s = square(5, 5, 8, 30, 30)
    assert boundary_measure(z, z) == 1.0      # both empty: P = R = 1
    assert boundary_measure(s, z) == 0.0      # prediction empty: P = 1, R = 0
    assert boundary_measure(z, s) == 0.0      # gt empty: P = 0, R = 1


def test_boundary_tolerance_scales_with_the_diagonal():
    # a 3 px shift: beyond 2 px at 100x100, within ceil(0.008*424.3) = 4 px at 300x300
    assert boundary_measure(square(20, 20, 20, 100, 100), square(20, 23, 20, 100, 100)) < 1.0
    assert boundary_measure(square(20, 20, 20, 300, 300), square(20, 23, 20, 300, 300)) == 1.0


# ----------------------------------------------------------------------------- statistics

def test_decay_quarters_on_ten_frames():
    # linspace(1, 10, 5) = 1, 3.25, 5.5, 7.75, 10 → rounded - 1 = 0, 2, 5, 7, 9
    np.testing.assert_array_equal(decay_bounds(10), [0, 2, 5, 7, 9])
    # halves round up as in the official code: linspace(1, 4, 5) has 2.5 → 3
    np.testing.assert_array_equal(decay_bounds(4), [0, 1, 2, 2, 3])
    v = np.arange(10) / 10.0
    mean, recall, decay = db_statistics(v)
    assert mean == pytest.approx(0.45)
    assert recall == pytest.approx(0.4)                     # 0.6 0.7 0.8 0.9 (0.5 is not > 0.5)
    assert decay == pytest.approx((0.0 + 0.1 + 0.2) / 3 - (0.7 + 0.8 + 0.9) / 3)
    assert db_statistics([np.nan, 1.0, 0.0])[0] == pytest.approx(0.5)   # nanmean


# ----------------------------------------------------------------------------- sequence rules

def test_first_and_last_frames_excluded(tmp_path):
    gt = make_video(5)
    pred = [m.copy() for m in gt]
    rng = np.random.default_rng(0)
    pred[0] = rng.integers(0, 200, (H, W)).astype(np.uint8)   # garbage, even ids > max
    pred[-1] = rng.integers(0, 3, (H, W)).astype(np.uint8)
    res = run_eval(tmp_path, {'v': gt}, {'v': pred})
    assert res['J&F-Mean'] == pytest.approx(1.0)
    assert res['J']['v_1'].shape == (3,)
    J, F = evaluate_sequence(gt, [None] + gt[1:-1] + [None])   # never looked at
    assert J.shape == F.shape == (2, 3) and (J == 1).all() and (F == 1).all()


def test_void_255_counted_as_background(tmp_path):
    gt = []
    for t in range(4):
        m = square(4, 4, 10)
        m[30:36, 30:40] = 255              # void region, also in the first frame
        gt.append(m)
    pred_ok = [np.where(m == 255, 0, m).astype(np.uint8) for m in gt]
    J, F = evaluate_sequence(gt, pred_ok)
    assert J.shape == (1, 2)               # 255 is not an object: one object only
    assert (J == 1).all() and (F == 1).all()
    # predicting the object over the void pixels counts as false positive (60 px)
    pred_void = [np.where(m == 255, 1, m).astype(np.uint8) for m in gt]
    J, _ = evaluate_sequence(gt, pred_void)
    np.testing.assert_allclose(J, 100 / 160)


def test_missing_id_is_an_empty_mask():
    gt = make_video(4)
    pred = [np.where(m == 2, 0, m).astype(np.uint8) for m in gt]   # object 2 never predicted
    J, F = evaluate_sequence(gt, pred)
    assert (J[0] == 1).all() and (J[1] == 0).all() and (F[1] == 0).all()


def test_prediction_id_above_max_is_an_error(tmp_path):
    gt = make_video(4, n_obj=1)
    pred = [m.copy() for m in gt]
    pred[2][0, 0] = 3
    with pytest.raises(UserError, match=r'00002\.png.*object id 3.*only 1 object'):
        run_eval(tmp_path, {'v': gt}, {'v': pred})


def test_missing_prediction_file_names_it(tmp_path):
    gt, pred = tmp_path / 'gt', tmp_path / 'pred'
    write_tree(gt, {'v': make_video(5)})
    write_tree(pred, {'v': make_video(5)})
    os.remove(pred / 'v' / '00002.png')
    with pytest.raises(UserError, match=r'v[/\\]00002\.png: file not found'):
        evaluate(str(gt), str(pred), progress=False, verbose=False)


def test_prediction_of_another_size_is_an_error(tmp_path):
    gt = make_video(4)
    pred = [m.copy() for m in gt]
    pred[1] = np.zeros((H + 2, W), np.uint8)
    with pytest.raises(UserError, match=r'00001\.png: prediction size'):
        run_eval(tmp_path, {'v': gt}, {'v': pred})


# ----------------------------------------------------------------------------- files and CLI

def test_csv_headers_and_rows(tmp_path):
    gt = {'cat': make_video(5), 'dog': make_video(4, n_obj=1)}
    pred = {'cat': [np.where(m == 2, 0, m).astype(np.uint8) for m in gt['cat']],
            'dog': gt['dog']}
    out = tmp_path / 'out'
    res = run_eval(tmp_path, gt, pred, split='val', out_dir=str(out))
    g = read_csv(out / 'global_results-val.csv')
    assert g[0] == ['J&F-Mean', 'J-Mean', 'J-Recall', 'J-Decay', 'F-Mean', 'F-Recall', 'F-Decay']
    assert len(g) == 2 and g[1][1] == '0.667'          # J-Means 1, 0, 1 → 2/3
    assert g[1][0] == '%.3f' % res['J&F-Mean']
    s = read_csv(out / 'per-sequence_results-val.csv')
    assert s[0] == ['Sequence', 'J-Mean', 'F-Mean']
    assert s[1:] == [['cat_1', '1.000', '1.000'], ['cat_2', '0.000', '0.000'],
                     ['dog_1', '1.000', '1.000']]
    assert not os.path.exists(tmp_path / 'pred' / 'global_results-val.csv')


def test_davis_root_with_imageset_and_cli(tmp_path, capsys):
    root = tmp_path / 'DAVIS'
    vids = {'a': make_video(4), 'b': make_video(4, n_obj=1), 'c': make_video(4)}
    write_tree(root / 'Annotations' / '480p', vids)
    os.makedirs(root / 'ImageSets' / '2017')
    (root / 'ImageSets' / '2017' / 'val.txt').write_text('c\na\n')
    pred = tmp_path / 'pred'
    write_tree(pred, {'a': vids['a'], 'c': vids['c']})          # b has no predictions
    assert main(['--gt_path', str(root), '--pred_path', str(pred)]) == 0
    rows = read_csv(pred / 'per-sequence_results-val.csv')
    assert [r[0] for r in rows[1:]] == ['c_1', 'c_2', 'a_1', 'a_2']   # image-set order
    assert 'J&F-Mean' in capsys.readouterr().out
    # an explicit image set file, another split name, two workers
    sel = tmp_path / 'sel.txt'
    sel.write_text('a\n')
    res = evaluate(str(root), str(pred), imageset=str(sel), split='test', workers=2,
                   progress=False, verbose=False)
    assert [o['Sequence'] for o in res['per_object']] == ['a_1', 'a_2']
    assert os.path.isfile(pred / 'global_results-test.csv')


def test_cli_reports_user_error_with_exit_status_2(tmp_path, capsys):
    from util.errors import run_main
    with pytest.raises(SystemExit) as e:
        run_main(main, ['--gt_path', str(tmp_path / 'nope'), '--pred_path', str(tmp_path)])
    assert e.value.code == 2
    assert 'nope: ground-truth folder not found' in capsys.readouterr().err


def test_plot_writes_a_bar_chart_beside_the_csvs(tmp_path):
    from PIL import Image
    gt = {'cat': make_video(5), 'dog': make_video(4, n_obj=1)}
    pred = {'cat': [np.where(m == 2, 0, m).astype(np.uint8) for m in gt['cat']],
            'dog': gt['dog']}
    write_tree(tmp_path / 'gt', gt)
    write_tree(tmp_path / 'pred', pred)
    out = tmp_path / 'out'
    assert main(['--gt_path', str(tmp_path / 'gt'), '--pred_path', str(tmp_path / 'pred'),
                 '--out', str(out), '--plot']) == 0
    png = out / 'per-sequence_results-val.png'
    assert sorted(os.listdir(out)) == ['global_results-val.csv', 'per-sequence_results-val.csv',
                                       'per-sequence_results-val.png']
    with Image.open(png) as img:
        assert img.format == 'PNG' and img.width >= 600
        rgb = np.asarray(img.convert('RGB')).astype(int)
    bar = (np.abs(rgb - np.array([0x48, 0x78, 0xb0])).sum(-1) < 30)
    # two bars at J&F 1 (cat_1, dog_1) fill most of the axis height; cat_2 (0) has none
    cols = np.nonzero(bar.sum(0) > 0.5 * rgb.shape[0])[0]
    runs = 1 + int((np.diff(cols) > 1).sum()) if len(cols) else 0
    assert runs == 2
    # without --plot no chart
    main(['--gt_path', str(tmp_path / 'gt'), '--pred_path', str(tmp_path / 'pred'),
          '--out', str(tmp_path / 'o2')])
    assert not os.path.exists(tmp_path / 'o2' / 'per-sequence_results-val.png')
