"""train.py: flags, and end-to-end runs on tiny synthetic data (CPU).

The end-to-end tests are marked `slow` (about 1-2 minutes together on 2 cores);
`pytest -m "not slow"` skips them.
"""
import json
import os
import shlex
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from util.hyper_para import STAGE_DEFAULTS, HyperParameters
from helpers import NO_SUBSETS, training_layouts

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PY = sys.executable

PHASE1 = """--stage 3 --id phase1 --load_network ckpts/stcn_s0.pth
  --yv_data util/yv_rand_2frames.json --davis_data  util/davis_rand_2frames.json
  --semi --semi_thres_upper 0.9 --end_warm 70000 --use_teacher --ema_alpha 0.995"""
PHASE2 = """--stage 3 --id phase2 --load_network saves/stcn_s0.pth
  --yv_data util/yv_rand_2frames.json --davis_data  util/davis_rand_2frames.json
  --phase2_yv ../vos_phase2/phase1_merge_480p --phase2_davis ../vos_phase2/phase1_merge_davis
  --phase2_train 0 --phase2_thres 0.99 --phase2_start_update 70000"""


def test_readme_phase1_command_parses():
    p = HyperParameters().parse(['--local_rank=1'] + shlex.split(PHASE1))
    assert p['stage'] == 3 and p['id'] == 'phase1' and p['local_rank'] == 1
    assert p['load_network'] == 'ckpts/stcn_s0.pth'
    assert p['yv_data'] == 'util/yv_rand_2frames.json'
    assert p['davis_data'] == 'util/davis_rand_2frames.json'
    assert p['semi'] and p['use_teacher']
    assert (p['semi_thres_upper'], p['semi_thres_lower'], p['end_warm'], p['ema_alpha']) == \
        (0.9, 0.1, 70000, 0.995)
    assert (p['lr'], p['batch_size'], p['iterations'], p['steps']) == (1e-5, 4, 150000, [125000])
    assert p['phase2_train'] == -1 and p['update_pseudo_bank'] == -1
    assert p['amp'] and p['seed'] == 14159265 and p['crop_size'] == 384
    json.loads(p.to_json())


def test_readme_phase2_command_parses():
    p = HyperParameters().parse(['--local-rank', '0'] + shlex.split(PHASE2))
    assert p['phase2_yv'] == '../vos_phase2/phase1_merge_480p'
    assert p['phase2_davis'] == '../vos_phase2/phase1_merge_davis'
    assert (p['phase2_train'], p['phase2_thres'], p['phase2_start_update']) == (0, 0.99, 70000)
    assert p['phase2_root'] == '../vos_phase2' and not p['semi'] and not p['use_teacher']


@pytest.mark.parametrize('stage', [0, 1, 2, 3])
def test_stage_defaults_and_overrides(stage):
    p = HyperParameters().parse(['--stage', str(stage)])
    assert (p['lr'], p['batch_size'], p['iterations'], p['steps']) == STAGE_DEFAULTS[stage]
    p = HyperParameters().parse(['--stage', str(stage), '-b', '2', '-i', '10', '--steps', '3',
                                 '7', '--lr', '0.1', '--no_amp', '--gamma', '0.5'])
    assert (p['lr'], p['batch_size'], p['iterations'], p['steps'], p['gamma'], p['amp']) == \
        (0.1, 2, 10, [3, 7], 0.5, False)


def test_bad_values_rejected():
    with pytest.raises(SystemExit):
        HyperParameters().parse(['--crop_size', '100'])
    with pytest.raises(SystemExit):
        HyperParameters().parse(['--stage', '4'])


def test_skip_curriculum():
    from dataset.training_data import max_skip_at
    assert [max_skip_at(e, 100) for e in (0, 9, 10, 20, 30, 40, 89, 90, 99)] == \
        [5, 5, 10, 15, 20, 25, 25, 5, 5]
    assert max_skip_at(80, 100, bl=True) == 5 and max_skip_at(80, 100) == 25


def test_the_step_at_end_warm_is_still_warm_up():
    from dataset.data_mode import data_mode, modes_reached
    para = {'phase2_train': -1, 'semi': True, 'end_warm': 3, 'iterations': 10}
    assert [data_mode(para, it) for it in (0, 3, 4)] == ['base', 'base', 'semi']
    assert modes_reached(para, 0) == ['base', 'semi'] and modes_reached(para, 3) == ['base', 'semi']
    assert modes_reached(para, 4) == ['semi']
    assert modes_reached(dict(para, iterations=4), 0) == ['base']    # its 0..3: warm-up only
    para.update(phase2_train=3)
    assert [data_mode(para, it) for it in (2, 3)] == ['base', 'phase2']


def test_davis_root_either_spelling(tmp_path):
    """--davis_root: the folder holding 2017/ or the 2017 folder itself."""
    from dataset.training_data import DataMix
    from scripts.data.synthetic_data import generate
    d = generate(tmp_path, 'davis', videos=2, frames=3, height=16, width=16, objects=1,
                 val_videos=1)
    y = generate(tmp_path, 'youtube', videos=1, frames=3, height=16, width=16, objects=1,
                 val_videos=0)
    for root in (d['root'], os.path.join(d['root'], '2017')):
        para = HyperParameters().parse(['--stage', '3', '--davis_root', root,
                                        '--yv_root', y['root'], '--crop_size', '16',
                                        *NO_SUBSETS])
        ds = DataMix(para, 'base').videos[0][0]
        assert ds.im_root == os.path.join(d['trainval'], 'JPEGImages', '480p') and ds.videos


def _run(args, cwd=ROOT, timeout=400, env_extra=None, launcher=None):
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONUNBUFFERED='1')
    env.update(env_extra or {})
    cmd = (launcher or [PY]) + [os.path.join(ROOT, 'train.py')] + [str(a) for a in args]
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    return res


def test_phase2_without_bank_is_a_clear_error(tmp_path):
    res = _run(['--stage', '3', '--phase2_train', '0', '--save_root', tmp_path])
    assert res.returncode == 2
    assert res.stderr.strip().splitlines()[-1].startswith('error: --phase2_train is set but')
    assert not os.listdir(tmp_path)


# ----------------------------------------------------------------------------- end to end

@pytest.fixture(scope='module')
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp('data')
    d, y = training_layouts(root, 4, 2, frames=6, height=48, width=64)
    return {'root': root, 'davis': d, 'youtube': y,
            'flags': ['--stage', '3', '--crop_size', '64', '-b', '2', '--num_workers', '0',
                      '--davis_root', d['root'], '--yv_root', y['root'],
                      '--davis_data', d['split'], '--yv_data', y['split']]}


def _run_dir(save_root):
    runs = sorted(os.listdir(save_root))
    assert len(runs) == 1, runs
    return os.path.join(save_root, runs[0]), runs[0]


@pytest.fixture(scope='module')
def semi_run(data, tmp_path_factory):
    save_root = tmp_path_factory.mktemp('saves')
    res = _run(data['flags'] + ['--semi', '--use_teacher', '--end_warm', '2', '-i', '6',
                                '--steps', '3', '--id', 'semi', '--save_root', save_root,
                                '--log_every', '1'])
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    run_dir, name = _run_dir(save_root)
    return {'dir': run_dir, 'name': name, 'stdout': res.stdout}


@pytest.mark.slow
def test_semi_run_writes_loadable_checkpoints(semi_run):
    from model.checkpoint import load_network, read_checkpoint
    from model.eval_network import STCN
    d, name = semi_run['dir'], semi_run['name']
    assert name.endswith('_semi')
    files = set(os.listdir(d))
    assert {f'{name}_6.pth', f'{name}_6_tea.pth', f'{name}_checkpoint.pth',
            'hyperparameters.json'} <= files
    assert any(f.startswith('events.out.tfevents') for f in files)
    hp = json.load(open(os.path.join(d, 'hyperparameters.json')))
    assert hp['end_warm'] == 2 and hp['iterations'] == 6 and hp['semi'] is True
    assert 'data: semi' in semi_run['stdout'] and 'coverage' in semi_run['stdout']
    nets = {}
    for f in (f'{name}_6.pth', f'{name}_6_tea.pth', f'{name}_checkpoint.pth'):
        nets[f] = load_network(STCN(), os.path.join(d, f)).state_dict()
    w = 'decoder.pred.weight'
    assert torch.equal(nets[f'{name}_6.pth'][w], nets[f'{name}_checkpoint.pth'][w])
    assert not torch.equal(nets[f'{name}_6.pth'][w], nets[f'{name}_6_tea.pth'][w])
    ck = read_checkpoint(os.path.join(d, f'{name}_checkpoint.pth'))
    assert ck['it'] == 6 and set(ck) >= {'network', 'teacher', 'optimizer', 'scheduler', 'scaler'}
    assert not any(k.startswith('module.') for k in ck['network'])


@pytest.mark.slow
def test_resume_continues_iteration_and_lr(semi_run, data, tmp_path):
    from model.checkpoint import read_checkpoint
    ck_path = os.path.join(semi_run['dir'], f'{semi_run["name"]}_checkpoint.pth')
    res = _run(data['flags'] + ['--semi', '--use_teacher', '--end_warm', '2', '-i', '7',
                                '--steps', '3', '--id', 'resumed', '--save_root', tmp_path,
                                '--load_model', ck_path, '--log_every', '1'])
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert 'resumed' in res.stdout and 'at iteration 6 (lr 1e-06)' in res.stdout
    assert 'it 7/7' in res.stdout and 'it 1/7' not in res.stdout
    d, name = _run_dir(tmp_path)
    assert {f'{name}_7.pth', f'{name}_7_tea.pth'} <= set(os.listdir(d))
    ck = read_checkpoint(os.path.join(d, f'{name}_checkpoint.pth'))
    assert ck['it'] == 7
    assert ck['scheduler']['last_epoch'] == 7
    assert ck['optimizer']['param_groups'][0]['lr'] == pytest.approx(1e-6)
    steps = {float(s['step']) for s in ck['optimizer']['state'].values()}
    assert steps == {7.0}


@pytest.mark.slow
def test_torchrun_two_processes_identical_weights(data, tmp_path):
    res = _run(data['flags'] + ['-i', '2', '-b', '1', '--crop_size', '32', '--id', 'ddp',
                                '--save_root', tmp_path, '--debug'],
               launcher=[PY, '-m', 'torch.distributed.run', '--nproc_per_node=2',
                         '--master_port', str(29500 + os.getpid() % 1000)])
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    d, name = _run_dir(tmp_path)
    digests = [open(os.path.join(d, f'rank{r}_weights.sha256')).read().strip() for r in (0, 1)]
    assert digests[0] == digests[1] and len(digests[0]) == 64
    hp = json.load(open(os.path.join(d, 'hyperparameters.json')))
    assert hp['world_size'] == 2
    # the saved student is the synchronised one, and it moved away from the start
    from model.checkpoint import read_checkpoint
    import hashlib
    sd = read_checkpoint(os.path.join(d, f'{name}_2.pth'))
    h = hashlib.sha256()
    for k, v in sd.items():
        h.update(k.encode())
        h.update(v.contiguous().numpy().tobytes())
    assert h.hexdigest() == digests[0]


@pytest.mark.slow
def test_phase2_bank_update_rewrites_pngs(data, tmp_path):
    """Phase 2 from iteration 0 with the bank update on, on a one-object bank; threshold 0
    makes every refresh confident background while every pixel is a confident target, so each
    sample's target region changes and the confident target is not inside it: every sample's
    frames 1-2 are rewritten, the truly labeled ones kept (--phase2_keep_true_labels)."""
    from util.image_io import write_mask
    from dataset.two_shot_split import load_split
    d = data['davis']
    bank = tmp_path / 'bank'
    shutil.copytree(os.path.join(d['trainval'], 'Annotations', '480p'), bank)
    for p in bank.rglob('*.png'):
        m = np.asarray(Image.open(p))
        write_mask(p, np.where(m == 1, 1, 0).astype(np.uint8))
    split = load_split(d['split'])
    before = {str(p): np.asarray(Image.open(p)).copy() for p in bank.rglob('*.png')}
    res = _run(data['flags'] + ['-i', '2', '--id', 'p2', '--save_root', tmp_path / 'saves',
                                '--phase2_davis', 'bank', '--phase2_root', tmp_path,
                                '--phase2_train', '0', '--phase2_start_update', '0',
                                '--update_pseudo_bank', '0', '--phase2_thres', '0.0',
                                '--phase2_keep_true_labels', '--log_every', '1'])
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert 'data: phase2' in res.stdout
    changed = []
    for p, old in before.items():
        img = Image.open(p)
        assert img.mode == 'P'
        new = np.asarray(img)
        assert new.shape == old.shape
        if not np.array_equal(new, old):
            changed.append(p)
            video, frame = os.path.basename(os.path.dirname(p)), os.path.basename(p)
            assert frame.replace('.png', '.jpg') not in split.get(video, [])  # true labels kept
    assert changed
    assert not list(bank.rglob('.tmp*'))
