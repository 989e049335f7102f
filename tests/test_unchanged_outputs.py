"""Outputs that a refactoring must not change, against values recorded by the code before it.

Every eval script, the four intermediate passes + merge, `eval_youtube_bank.py` (YouTube and
DAVIS) and two short CPU training runs (phase 1 with the teacher's pseudo labels, phase 2 with
the bank refresh and write-back) run on one small synthetic data set with one seeded network;
their masks (decoded pixels and palette), the training losses (TensorBoard scalars), image
grids and final weights are hashed and compared with tests/data/unchanged_outputs.json.

A few trainer steps on hand-made 32x32 batches cover each data mode's targets (stage 0's
single object, two-class samples, phase 1 with the student's and the teacher's pseudo
labels, phase 2 with kept true labels and with the bank write-back): every step's statistics
(losses, IoU, pseudo-label shares, bank writes) and the final student / teacher weights and
bank masks are compared with tests/data/unchanged_steps.json (test_steps_unchanged, fast).

Float rounding depends on the CPU's kernels, so a reference holds on the machine kind it was
recorded on (torch version, CPU capability, CPU model; one thread). Each file keeps one record
per machine kind; a machine with no record skips the test, and a record compares the entries
it holds (a deliberate change of behaviour drops the changed entries from the records of
machines that cannot be re-run here). To record this machine's reference, at a commit whose
behaviour is the one to keep (the other machines' records are kept):

    python -m tests.test_unchanged_outputs --record
"""
import glob
import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

try:
    from helpers import make_batch, make_model, step
except ImportError:                               # run as python -m tests.test_unchanged_outputs
    from tests.helpers import make_batch, make_model, step

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REFERENCE = os.path.join(ROOT, 'tests', 'data', 'unchanged_outputs.json')
STEPS_REFERENCE = os.path.join(ROOT, 'tests', 'data', 'unchanged_steps.json')


def machine():
    model = ''
    if os.path.isfile('/proc/cpuinfo'):
        with open('/proc/cpuinfo') as f:
            model = next((ln.split(':', 1)[1].strip() for ln in f
                          if ln.startswith('model name')), '')
    return {'torch': torch.__version__, 'cpu': torch.backends.cpu.get_cpu_capability(),
            'cpu_model': model}


def tree_digest(folder):
    """sha256 over (relative path, pixels, palette) of every PNG under `folder`."""
    h = hashlib.sha256()
    files = sorted(glob.glob(os.path.join(folder, '**', '*.png'), recursive=True))
    assert files, folder
    for p in files:
        img = Image.open(p)
        h.update(os.path.relpath(p, folder).encode())
        h.update(np.asarray(img).tobytes())
        h.update(bytes(img.getpalette() or []))
    return h.hexdigest()


def foreground_beyond_labels(folder, sparse):
    """Whether some predicted (not given) mask holds an object: the reference is not trivial."""
    for p in glob.glob(os.path.join(folder, '*', '*.png')):
        given = os.path.join(sparse, os.path.basename(os.path.dirname(p)), os.path.basename(p))
        if not os.path.isfile(given) and np.asarray(Image.open(p)).any():
            return True
    return False


def make_data(root):
    from scripts.data.synthetic_data import generate
    d = generate(root, 'davis', videos=3, frames=7, height=48, width=64, objects=2, seed=7,
                 val_videos=1)
    y = generate(root, 'youtube', videos=2, frames=7, height=48, width=64, objects=2, seed=8,
                 val_videos=1)
    return d, y


def make_checkpoint(path):
    """A seeded random STCN whose mask channels are sharpened, so that outputs follow labels."""
    from model.network import STCN
    torch.manual_seed(0)
    net = STCN()
    with torch.no_grad():
        net.value_encoder.conv1.weight[:, 3:] *= 100
    torch.save(net.state_dict(), path)


def eval_outputs(root):
    """{run name: digest} of the masks of every eval script on the synthetic data."""
    import eval_davis
    import eval_davis_2016
    import eval_generic
    import eval_youtube
    import eval_youtube_bank
    import eval_youtube_phase2
    from phase2.merge import merge
    d, y = make_data(root)
    ckpt = os.path.join(root, 'stcn.pth')
    make_checkpoint(ckpt)
    out = lambda name: os.path.join(root, 'out', name)   # noqa: E731
    m = ['--model', ckpt]
    eval_davis.main(m + ['--davis_path', d['root'], '--output', out('d17')])
    eval_davis.main(m + ['--davis_path', d['root'], '--output', out('d17_testdev'),
                         '--split', 'testdev', '--include_last'])
    eval_davis_2016.main(m + ['--davis_path', d['root'], '--output', out('d16')])
    eval_youtube.main(m + ['--yv_path', y['root'], '--output', out('yv'), '--res', '-1'])
    eval_youtube.main(m + ['--yv_path', y['root'], '--output', out('yv_all'), '--res', '32',
                           '--output_all', '--mem_every', '2'])
    eval_generic.main(m + ['--data_path', y['valid'], '--output', out('generic'), '--res', '-1',
                           '--amp_off'])
    passes = {'left': [], 'leftsecgt': ['--only_sec_gt'], 'right': ['--reverse'],
              'rightsecgt': ['--reverse', '--only_sec_gt']}
    yv_pass = m + ['--yv_path', y['root'], '--res', '-1', '--data_file', y['sparse']]
    dv_pass = m + ['--davis', '--davis_path', d['root'], '--data_file', d['sparse'],
                   '--mem_every', '5']
    for name, flags in passes.items():
        eval_youtube_phase2.main(yv_pass + flags + ['--output', out(name)])
    merge(y['sparse'], *[out(n) for n in passes], out('merged'), progress=False)
    eval_youtube_bank.main(yv_pass + ['--output', out('bank')])
    eval_youtube_phase2.main(dv_pass + ['--output', out('davis_left')])
    eval_youtube_bank.main(dv_pass + ['--output', out('davis_bank')])
    eval_youtube_bank.main(dv_pass + ['--exact_readout', '--output', out('davis_bank_exact')])
    banks = ('merged', 'bank', 'davis_bank', 'davis_bank_exact')    # <bank>/Annotations/<video>
    assert foreground_beyond_labels(os.path.join(out('merged'), 'Annotations'), y['sparse'])
    names = ['d17', 'd17_testdev', 'd16', 'yv', 'yv_all', 'generic', *passes, 'merged', 'bank',
             'davis_left', 'davis_bank', 'davis_bank_exact']
    return {n: tree_digest(os.path.join(out(n), 'Annotations') if n in banks else out(n))
            for n in names}


def train_outputs(root):
    """Two short CPU training runs: {run: {losses, images, weights}} (see module doc)."""
    import shutil
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    d, y = make_data(root)
    ckpt = os.path.join(root, 'stcn.pth')
    make_checkpoint(ckpt)
    base = ['--stage', '3', '--crop_size', '64', '-b', '2', '--num_workers', '0', '--no_amp',
            '--davis_root', d['root'], '--yv_root', y['root'], '--davis_data', d['split'],
            '--yv_data', y['split'], '--load_network', ckpt, '--log_every', '1',
            '--image_every', '2', '-i', '3']
    bank = os.path.join(root, 'bank')
    shutil.copytree(os.path.join(d['trainval'], 'Annotations', '480p'), bank)
    runs = {
        'phase1': ['--semi', '--use_teacher', '--end_warm', '1', '--id', 'p1'],
        'phase2': ['--phase2_davis', 'bank', '--phase2_root', root, '--phase2_train', '0',
                   '--phase2_start_update', '1', '--update_pseudo_bank', '1',
                   '--phase2_thres', '0.4', '--id', 'p2'],
    }
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=ROOT)
    result = {}
    for name, flags in runs.items():
        saves = os.path.join(root, 'saves_' + name)
        res = subprocess.run([sys.executable, os.path.join(ROOT, 'train.py')] + base + flags
                             + ['--save_root', saves], cwd=root, env=env, capture_output=True,
                             text=True, timeout=600)
        assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
        (run_dir,) = glob.glob(os.path.join(saves, '*'))
        acc = EventAccumulator(run_dir, size_guidance={'images': 0, 'scalars': 0}).Reload()
        losses = {t: [e.value for e in acc.Scalars(t)] for t in acc.Tags()['scalars']
                  if t.startswith(('train/loss', 'train/pseudo', 'train/iou', 'train/bank'))}
        images = {t: [hashlib.sha256(e.encoded_image_string).hexdigest()
                      for e in acc.Images(t)] for t in acc.Tags()['images']}
        h = hashlib.sha256()
        for f in sorted(glob.glob(os.path.join(run_dir, '*_3*.pth'))):
            for k, v in sorted(torch.load(f, map_location='cpu').items()):
                h.update(k.encode())
                h.update(v.contiguous().numpy().tobytes())
        result[name] = {'losses': losses, 'images': images, 'weights': h.hexdigest()}
    result['phase2']['bank'] = tree_digest(bank)
    return result


def compute(root):
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return {'eval': eval_outputs(os.path.join(root, 'eval')),
                'train': train_outputs(os.path.join(root, 'train'))}
    finally:
        torch.set_num_threads(before)


# name: (trainer flags, make_batch arguments, iterations, with a bank)
STEP_CASES = {
    'stage0': (['--stage', '0'], dict(labeled=(True, True, True), second=False), (0, 1), False),
    'two_class': (['--bce_start_warm', '0', '--bce_end_warm', '2'], dict(labeled=(True, True, True), second=False), (0, 1), False),
    'warmup': (['--semi', '--end_warm', '5'], dict(), (0, 1), False),
    'semi_student': (['--semi', '--end_warm', '0', '--semi_thres_upper', '0.4'], dict(),
                     (1, 2), False),
    'semi_teacher': (['--semi', '--use_teacher', '--end_warm', '0', '--semi_thres_upper', '0.4',
                      '--bce_start_warm', '1', '--bce_end_warm', '3'], dict(), (0, 1, 2), False),
    'phase2_keep': (['--phase2_train', '0', '--phase2_start_update', '1', '--phase2_thres', '0.4',
                     '--phase2_keep_true_labels', '--use_teacher'],
                    dict(labeled=(True, False, True)), (0, 1, 2), False),
    'phase2_bank': (['--phase2_train', '0', '--phase2_start_update', '0', '--update_pseudo_bank',
                     '0', '--phase2_thres', '0.4'], dict(labeled=(True, True, False)), (0, 1),
                    True),
}


def step_bank(root):
    """{video: bank entry} of a 3-frame 40x56 video (frames, true labels, bank; ids 1-3)."""
    from util.image_io import write_mask
    rng = np.random.default_rng(0)
    dirs = {k: os.path.join(root, k) for k in ('im', 'gt', 'bank')}
    for t in range(3):
        os.makedirs(os.path.join(dirs['im'], 'vid'), exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (40, 56, 3), dtype=np.uint8)).save(
            os.path.join(dirs['im'], 'vid', f'{t:05d}.jpg'))
        m = np.zeros((40, 56), np.uint8)
        m[5:20, 5 + t:25 + t] = 1
        m[25:35, 30:50] = 2
        m[0:4, 40:56] = 3
        for k in ('gt', 'bank'):
            write_mask(os.path.join(dirs[k], 'vid', f'{t:05d}.png'), m)
    return {'vid': {'im_root': dirs['im'], 'gt_root': dirs['gt'], 'bank_root': dirs['bank'],
                    'labeled': {'00000', '00001'}}}


def state_digest(net):
    h = hashlib.sha256()
    for k, v in net.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().contiguous().numpy().tobytes())
    return h.hexdigest()


def step_outputs(root):
    """{case: {'stats': [per step], 'student', 'teacher', 'bank'}} of STEP_CASES."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    out = {}
    try:
        for name, (flags, batch_kw, its, with_bank) in STEP_CASES.items():
            bank = step_bank(os.path.join(root, name)) if with_bank else None
            model = make_model('--no_amp', *flags, bank=bank)
            batch = make_batch(**batch_kw)
            if name == 'two_class':
                batch['selector'][0, 1] = 1.0          # sample 0 claims a second object
            stats = []
            for it in its:
                s = step(model, batch, it)
                stats.append({k: float(v) for k, v in sorted(s.items())
                              if not k.startswith('time/')})
            out[name] = {'stats': stats, 'student': state_digest(model.net),
                         'teacher': state_digest(model.teacher) if model.teacher else None,
                         'bank': tree_digest(bank['vid']['bank_root']) if bank else None}
    finally:
        torch.set_num_threads(before)
    return out


def test_steps_unchanged(tmp_path):
    ref = load_reference(STEPS_REFERENCE)
    got = step_outputs(str(tmp_path))
    for name in STEP_CASES:
        assert got[name]['stats'] == ref['steps'][name]['stats'], name
        assert {k: got[name][k] for k in ref['steps'][name]} == ref['steps'][name], name


def machine_records(path):
    """The records of a reference file, one per machine kind."""
    with open(path) as f:
        ref = json.load(f)
    return ref['machines'] if 'machines' in ref else [ref]


def load_reference(path=REFERENCE):
    if not os.path.isfile(path):
        pytest.skip(f'no reference recorded ({path})')
    records = machine_records(path)
    mine = [r for r in records if r['machine'] == machine()]
    if not mine:
        pytest.skip(f'references recorded on {[r["machine"] for r in records]}, this is '
                    f'{machine()}')
    return mine[0]


@pytest.mark.slow
def test_outputs_unchanged(tmp_path):
    ref = load_reference()
    got = compute(str(tmp_path))
    assert {k: got['eval'][k] for k in ref['eval']} == ref['eval']
    for run in ref['train']:
        assert got['train'][run]['losses'] == ref['train'][run]['losses'], run
        assert {k: got['train'][run][k] for k in ref['train'][run]} == ref['train'][run], run


if __name__ == '__main__':
    import tempfile
    if sys.argv[1:] not in (['--record'], ['--record', 'steps']):
        sys.exit('usage: python -m tests.test_unchanged_outputs --record [steps]')
    with tempfile.TemporaryDirectory() as tmp:
        records = {STEPS_REFERENCE: {'steps': step_outputs(tmp)}}
        if sys.argv[2:] != ['steps']:
            records[REFERENCE] = compute(tmp)
    for path, values in records.items():
        others = [r for r in machine_records(path) if r['machine'] != machine()] \
            if os.path.isfile(path) else []
        with open(path, 'w') as f:
            json.dump({'machines': others + [dict(machine=machine(), **values)]}, f, indent=1,
                      sort_keys=True)
            f.write('\n')
        print(f'{path}: written')
