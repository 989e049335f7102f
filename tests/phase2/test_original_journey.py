"""What a user switching from the original two-shot code (and STCN) does, line by line: the
pseudo-label bank where the original puts it, the original's merge command, the paper's split
files and STCN's training subsets, the README's pointers, and the original README's whole
journey from a checkout beside ../YouTube, ../DAVIS and ../vos_phase2 (synthetic data)."""
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from dataset.training_data import DataMix, build_data
from helpers import NO_SUBSETS, REPO, checkout_copy, training_layouts
from phase2.bank_writer import BankWriter
from phase2.merge import PASS_NAMES
from util.distributed import DistInfo
from util.errors import UserError
from util.hyper_para import HyperParameters
from util.image_io import read_mask, write_mask
from dataset.two_shot_split import load_split

PY = sys.executable


def beside(root, davis_videos=3, yt_videos=2, frames=5):
    """root/DAVIS and root/YouTube (synthetic, with the split JSON and sparse labels at the
    original's places) and an empty root/checkout as the working folder."""
    d, y = training_layouts(root, davis_videos, yt_videos, frames=frames, height=32, width=48)
    (root / 'checkout').mkdir()
    return d, y


def write_original_bank(folder, annotations):
    """A bank as the original's merge leaves it: <folder>/Annotations/<video>/<frame>.png."""
    shutil.copytree(annotations, folder / 'Annotations')
    return folder


def phase2_para(d, y, *flags):
    return HyperParameters().parse(
        ['--stage', '3', '--crop_size', '32', '--davis_root', '../DAVIS', '--yv_root',
         '../YouTube', '--davis_data', d['split'], '--yv_data', y['split'],
         '--phase2_train', '0', *flags])


def bank_videos(mix):
    """[DAVIS videos, YouTube videos] of a DataMix, sorted."""
    return [sorted(ds.videos) for ds, _ in mix.videos]


# ------------------------------------------------------------------ 2. the bank's layout

def test_bank_in_the_original_layout_passed_as_its_readme_says(tmp_path, monkeypatch):
    """The original README's --phase2_yv ../vos_phase2/phase1_merge_480p (joined to
    --phase2_root ../vos_phase2) reads <bank>/Annotations/<video>/; the write-back goes to the
    same files; a bare bank name is found under --phase2_root; a bank without Annotations/
    (earlier versions of this project) is read as it is."""
    d, y = beside(tmp_path)
    vos = tmp_path / 'vos_phase2'
    y_ann = os.path.join(y['train_480p'], 'Annotations')
    d_ann = os.path.join(d['trainval'], 'Annotations', '480p')
    write_original_bank(vos / 'phase1_merge_480p', y_ann)
    write_original_bank(vos / 'phase1_merge_davis', d_ann)
    monkeypatch.chdir(tmp_path / 'checkout')
    train = sorted(open(d['train_list']).read().split())
    want = [train, sorted(os.listdir(y_ann))]
    mix = DataMix(phase2_para(d, y, '--phase2_yv', '../vos_phase2/phase1_merge_480p',
                              '--phase2_davis', '../vos_phase2/phase1_merge_davis'), 'phase2')
    assert bank_videos(mix) == want
    v = want[1][0]
    frames = sorted(os.listdir(os.path.join(y['train_480p'], 'JPEGImages', v)))
    writer = BankWriter(mix.bank, 0.99, False, DistInfo())
    _, target, read = writer.paths(v, frames[1])
    expect = vos / 'phase1_merge_480p' / 'Annotations' / v / frames[1].replace('.jpg', '.png')
    assert os.path.realpath(target) == os.path.realpath(read) == str(expect)
    # a bare name, under the default --phase2_root ../vos_phase2
    mix = DataMix(phase2_para(d, y, '--phase2_yv', 'phase1_merge_480p'), 'phase2')
    assert bank_videos(mix)[1] == want[1]
    # a bank without Annotations/, given as a path of its own
    old = shutil.copytree(y_ann, tmp_path / 'old_bank')
    mix = DataMix(phase2_para(d, y, '--phase2_yv', str(old)), 'phase2')
    assert bank_videos(mix)[1] == want[1]
    assert mix.bank[v]['bank_root'] == str(old)
    # relative to the working folder, with the default root: refused, saying how to read it
    shutil.copytree(y_ann, 'here')
    with pytest.raises(UserError, match=re.escape('give --phase2_root "" to use here as given')):
        DataMix(phase2_para(d, y, '--phase2_yv', 'here'), 'phase2')
    mix = DataMix(phase2_para(d, y, '--phase2_yv', 'here', '--phase2_root', ''), 'phase2')
    assert bank_videos(mix)[1] == want[1]


def fake_passes(vos, annotations, sparse, suffix):
    """The four pass trees as the original's passes write them (every frame, in
    <pass>/Annotations/<video>/): the hidden labels of the objects the video's sparse labels
    hold (the ids a pass can predict)."""
    for name in PASS_NAMES:
        for v in os.listdir(sparse):
            ids = np.unique(np.concatenate([read_mask(os.path.join(sparse, v, f)).ravel()
                                            for f in os.listdir(os.path.join(sparse, v))]))
            for f in os.listdir(os.path.join(annotations, v)):
                m = read_mask(os.path.join(annotations, v, f))
                write_mask(vos / f'phase1_{name}_{suffix}' / 'Annotations' / v / f,
                           np.where(np.isin(m, ids), m, 0).astype(np.uint8))


@pytest.mark.parametrize('davis', [False, True])
def test_merge_without_flags_from_phase2_scripts(tmp_path, davis):
    """`cd phase2_scripts && python merge_left_right.py` merges the original's default pass
    folders into ../../vos_phase2/phase1_merge_480p/Annotations/ (--davis: the DAVIS names):
    every frame of every video, the labeled ones from the sparse labels."""
    d, y = beside(tmp_path)
    shutil.rmtree(tmp_path / 'checkout')
    checkout = checkout_copy(tmp_path / 'checkout')
    if davis:
        ann, frames = (os.path.join(d['trainval'], sub, '480p')
                       for sub in ('Annotations', 'JPEGImages'))
        sparse, suffix = d['sparse'], 'davis'
    else:
        ann, frames = (os.path.join(y['train_480p'], sub) for sub in ('Annotations', 'JPEGImages'))
        sparse, suffix = y['sparse'], '480p'
    vos = tmp_path / 'vos_phase2'
    fake_passes(vos, ann, sparse, suffix)
    r = subprocess.run([PY, 'merge_left_right.py'] + (['--davis'] if davis else []),
                       cwd=checkout / 'phase2_scripts', capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    bank = vos / f'phase1_merge_{suffix}'
    assert f'into ../../vos_phase2/phase1_merge_{suffix}/Annotations' in r.stdout
    assert sorted(os.listdir(bank)) == ['Annotations']
    videos = sorted(os.listdir(sparse))
    assert sorted(os.listdir(bank / 'Annotations')) == videos
    for v in videos:
        names = sorted(f[:-4] + '.png' for f in os.listdir(os.path.join(frames, v)))
        assert sorted(os.listdir(bank / 'Annotations' / v)) == names
        for f in os.listdir(os.path.join(sparse, v)):
            assert (bank / 'Annotations' / v / f).read_bytes() == \
                open(os.path.join(sparse, v, f), 'rb').read()


# ------------------------------------------------- 3. split files and training subsets

def tiny_frames(root, split):
    """A generic layout holding only the split's labeled frames (JPEG + a one-object mask)."""
    img = Image.fromarray(np.full((16, 16, 3), 128, np.uint8))
    mask = np.zeros((16, 16), np.uint8)
    mask[4:12, 4:12] = 1
    for v, names in split.items():
        os.makedirs(root / 'JPEGImages' / v)
        for n in names:
            img.save(root / 'JPEGImages' / v / n)
            write_mask(root / 'Annotations' / v / n.replace('.jpg', '.png'), mask)


@pytest.mark.parametrize('name,videos', [('davis', 60), ('yv', 3464)])
def test_paper_split_files_ship(name, videos):
    """util/<name>_rand_2frames.json: two frames of every video of STCN's subset list
    util/<name>_subset.txt (YouTube: train_480p names, every 5th frame)."""
    split = load_split(os.path.join(REPO, 'util', f'{name}_rand_2frames.json'))
    subset = open(os.path.join(REPO, 'util', f'{name}_subset.txt')).read().split()
    assert len(split) == len(subset) == videos and set(split) == set(subset)
    assert all(len(f) == 2 and all(re.fullmatch(r'\d{5}\.jpg', n) for n in f)
               for f in split.values())
    if name == 'yv':
        assert all(int(n[:5]) % 5 == 0 for f in split.values() for n in f)


@pytest.mark.parametrize('name', ['davis', pytest.param('yv', marks=pytest.mark.slow)])
def test_paper_split_files_pass_check_dataset(tmp_path, name):
    """`check_dataset --split_json util/<name>_rand_2frames.json` on a stand-in for the data
    set (which is not here): a tree holding exactly the frames the split names."""
    path = os.path.join(REPO, 'util', f'{name}_rand_2frames.json')
    tiny_frames(tmp_path, load_split(path))
    r = subprocess.run([PY, '-m', 'scripts.data.check_dataset', '--root', str(tmp_path), '--layout',
                        'generic', '--split_json', path, '--workers', '1'],
                       cwd=REPO, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]


def test_full_label_stages_train_on_stcns_subsets(tmp_path, capsys):
    """Stages 2/3 with full labels use util/yv_subset.txt / util/davis_subset.txt by default
    (STCN); --yv_subset FILE: its listed videos only, the missing ones reported once in one
    line; "none": every video. Two-shot data sets are not filtered."""
    d, y = beside(tmp_path, davis_videos=4, yt_videos=3)
    flags = ['--stage', '3', '--crop_size', '32', '-b', '1', '--num_workers', '0',
             '--davis_root', d['root'], '--yv_root', y['root']]
    with pytest.raises(UserError, match=re.escape(os.path.join('util', 'davis_subset.txt'))
                       + '.*none of the 60 videos.*--davis_subset none'):
        DataMix(HyperParameters().parse(flags), 'base')
    yv = sorted(os.listdir(os.path.join(y['train_480p'], 'JPEGImages')))
    lst = tmp_path / 'mine.txt'
    lst.write_text('\n'.join([yv[2], 'gone_1', yv[0], 'gone_2']) + '\n')
    para = HyperParameters().parse(flags + ['--yv_subset', str(lst), '--davis_subset', 'none'])
    data = build_data(para, DistInfo(), 0)
    (ds_davis, _), (ds_yv, _) = data['base'].mix.videos
    assert ds_yv.videos == [yv[0], yv[2]]
    assert ds_davis.videos == sorted(open(d['train_list']).read().split())
    notes = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith('note:')]
    assert notes == [f'note: {lst}: 2 of 4 listed videos are not in '
                     f'{os.path.join(y["train_480p"], "JPEGImages")} (e.g. gone_1, gone_2); '
                     'training on the other 2']
    mix = DataMix(HyperParameters().parse(flags + NO_SUBSETS), 'base')
    assert [ds.videos for ds, _ in mix.videos][1] == yv
    two_shot = HyperParameters().parse(flags + ['--yv_subset', str(lst), '--yv_data',
                                                y['split'], '--davis_data', d['split']])
    assert sorted(DataMix(two_shot, 'base').videos[1][0].videos) == \
        sorted(json.load(open(y['split'])))


# ------------------------------------------------------------------------- 5. the README

def test_readme_says_where_each_external_file_comes_from():
    text = open(os.path.join(REPO, 'README.md')).read()
    for link in ('https://github.com/hkchengrex/STCN', 'https://davischallenge.org/davis2017/',
                 'https://davischallenge.org/davis2016/', 'https://youtube-vos.org/',
                 'https://arxiv.org/abs/2303.12078', 'https://arxiv.org/abs/2106.05210',
                 'https://github.com/yk-pku/Two-shot-Video-Object-Segmentation'):
        assert link in text, link
    for fact in ('stcn_s0.pth', 'stcn.pth', '_tea.pth', 'all_frames', '-b 8', '-b 1'):
        assert fact in text, fact


# ---------------------------------------------------------------- the whole journey

@pytest.mark.parametrize('script,flags', [
    ('run_phase1.sh', '--yv_data util/yv_rand_2frames.json '
     '--davis_data util/davis_rand_2frames.json --semi --semi_thres_upper 0.9 --end_warm 70000 '
     '--use_teacher --ema_alpha 0.995'),
    ('run_phase2.sh', '--phase2_yv ../vos_phase2/phase1_merge_480p --phase2_davis '
     '../vos_phase2/phase1_merge_davis --phase2_train 0 --phase2_thres 0.99 '
     '--phase2_start_update 70000')])
def test_phase_scripts_run_with_sh(script, flags):
    """`sh run_phase1.sh` / `sh run_phase2.sh` as the original README runs them (sh, not
    bash), launching train.py with the README's flags (PYTHON=echo prints the command)."""
    r = subprocess.run(['sh', script], cwd=REPO, env=dict(os.environ, PYTHON='echo'),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert '--nproc_per_node=2 train.py --stage 3' in r.stdout and flags in r.stdout
    assert '--load_network ckpts/stcn_s0.pth' in r.stdout


def seeded_checkpoint(path):
    """A seeded random STCN whose mask channels are sharpened, so that outputs follow labels."""
    from model.network import STCN
    torch.manual_seed(0)
    net = STCN()
    with torch.no_grad():
        net.value_encoder.conv1.weight[:, 3:] *= 100
    os.makedirs(os.path.dirname(path), exist_ok=True)
    torch.save(net.state_dict(), path)


ORIGINAL_PASSES = ['sh run_youtube_phase2/run_eval_youtube_phase2_left.sh',
                   'sh run_youtube_phase2/run_eval_youtube_phase2_leftsecgt.sh',
                   'sh run_youtube_phase2/run_eval_youtube_phase2_right.sh',
                   'sh run_youtube_phase2/run_eval_youtube_phase2_rightsecgt.sh']
ORIGINAL_PHASE2 = ('python train.py --stage 3 --id phase2 --load_network saves/stcn_s0.pth '
                   '--yv_data util/yv_rand_2frames.json --davis_data util/davis_rand_2frames.json '
                   '--phase2_yv ../vos_phase2/phase1_merge_480p '
                   '--phase2_davis ../vos_phase2/phase1_merge_davis '
                   '--phase2_train 0 --phase2_thres 0.99 --phase2_start_update 70000')


@pytest.mark.slow
def test_original_readme_journey(tmp_path):
    """From a checkout beside ../YouTube, ../DAVIS and ../vos_phase2: the original README's
    four YouTube pass scripts (and the DAVIS ones), `cd phase2_scripts && python
    merge_left_right.py` (and --davis), then its phase-2 train.py line, verbatim, run as one
    process (the README launches it on 2 GPUs) plus small-size flags. The shipped split JSONs
    name the real videos, so the copy's util/*_rand_2frames.json are the synthetic splits;
    the phase-1 model is a seeded network at saves/phase1.pth, the original scripts' path."""
    d, y = beside(tmp_path, davis_videos=3, yt_videos=2, frames=6)
    shutil.rmtree(tmp_path / 'checkout')
    checkout = checkout_copy(tmp_path / 'checkout')
    shutil.copyfile(y['split'], checkout / 'util' / 'yv_rand_2frames.json')
    shutil.copyfile(d['split'], checkout / 'util' / 'davis_rand_2frames.json')
    seeded_checkpoint(str(checkout / 'saves' / 'phase1.pth'))
    shutil.copyfile(checkout / 'saves' / 'phase1.pth', checkout / 'saves' / 'stcn_s0.pth')
    env = dict(os.environ, OMP_NUM_THREADS='1',
               PATH=os.pathsep.join([os.path.dirname(PY), os.environ.get('PATH', '')]))
    small = ' -i 2 -b 2 --crop_size 32 --num_workers 0'
    davis_passes = [c.replace('youtube', 'davis') for c in ORIGINAL_PASSES]
    for line in (ORIGINAL_PASSES + davis_passes
                 + ['cd phase2_scripts && python merge_left_right.py',
                    'cd phase2_scripts && python merge_left_right.py --davis',
                    ORIGINAL_PHASE2 + small]):
        r = subprocess.run(line, shell=True, cwd=checkout, env=env, capture_output=True,
                           text=True, timeout=600)
        assert r.returncode == 0, (line, r.stdout[-3000:], r.stderr[-3000:])
    vos = tmp_path / 'vos_phase2'
    for suffix, frames in (('480p', os.path.join(y['train_480p'], 'JPEGImages')),
                           ('davis', os.path.join(d['trainval'], 'JPEGImages', '480p'))):
        for name in PASS_NAMES:
            assert (vos / f'phase1_{name}_{suffix}' / 'Annotations').is_dir()
        bank = vos / f'phase1_merge_{suffix}' / 'Annotations'
        for v in os.listdir(bank):
            assert sorted(os.listdir(bank / v)) == \
                sorted(f[:-4] + '.png' for f in os.listdir(os.path.join(frames, v)))
    (run,) = [p for p in os.listdir(checkout / 'saves') if p.endswith('_phase2')]
    assert f'{run}_2.pth' in os.listdir(checkout / 'saves' / run)
