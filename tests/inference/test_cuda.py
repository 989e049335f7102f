"""CUDA only (`pytest -m cuda`; skipped without a GPU): AMP inference in fp16 and bf16, an AMP
training step with the gradient scaler and its checkpoint, the NCCL process group on one rank,
and the pinned-memory prefetch of test videos and training batches. scripts/gpu_check.sh runs
them with the GPU benchmarks."""
import socket

import numpy as np
import pytest
import torch
import torch.nn as nn

import inference_core
from inference_core import InferenceConfig
from helpers import NO_SUBSETS, davis_tree, make_batch, step

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')]

DTYPES = [torch.float16, torch.bfloat16]


@pytest.fixture(scope='module')
def cuda_net():
    from model.eval_network import STCN
    torch.manual_seed(0)
    return STCN().cuda().eval()


def video_and_labels(h=240, w=432, t=8):
    g = torch.Generator().manual_seed(0)
    images = torch.randn(t, 3, h, w, generator=g)
    labels = torch.zeros(2, 1, h, w)
    labels[0, :, h // 8:h // 2, w // 8:w // 2] = 1
    labels[1, :, h // 2:7 * h // 8, w // 2:7 * w // 8] = 1
    return images, labels


@pytest.mark.parametrize('dtype', DTYPES, ids=['fp16', 'bf16'])
def test_amp_inference(cuda_net, dtype):
    if dtype == torch.bfloat16 and not torch.cuda.is_bf16_supported():
        pytest.skip('this GPU has no bf16')
    images, labels = video_and_labels()
    fp32 = inference_core.InferenceCore(cuda_net, images, 2, InferenceConfig(mem_every=3),
                                        device='cuda')
    fp32.interact(labels, 0, images.shape[0])
    seen = []
    handles = [m.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
               for m in cuda_net.modules() if isinstance(m, nn.Conv2d)]
    try:
        amp = 'bf16' if dtype == torch.bfloat16 else True
        core = inference_core.InferenceCore(cuda_net, images, 2,
                                            InferenceConfig(mem_every=3, amp=amp), device='cuda')
        core.interact(labels, 0, images.shape[0])
    finally:
        for h in handles:
            h.remove()
    assert core.amp and set(seen) == {dtype}
    assert core.mem.keys.dtype == core.mem.rows.dtype == dtype
    for ti in range(images.shape[0]):
        p, q = core.get_prob(ti), fp32.get_prob(ti)
        assert p.dtype == torch.float32 and torch.isfinite(p).all()
        assert torch.allclose(p.sum(0), torch.ones_like(p[0]), atol=1e-2)
        assert float((p - q).abs().mean()) < 0.05
    torch.cuda.synchronize()


def test_eval_script_amp_on_cuda(tmp_path, ckpt, capsys):
    import eval_davis
    davis_tree(str(tmp_path / 'DAVIS'), t=4)
    stats = eval_davis.main(['--model', ckpt, '--davis_path', str(tmp_path / 'DAVIS'),
                             '--output', str(tmp_path / 'out'), '--amp', '--device', 'cuda'])
    assert stats['frames'] == 4 and 'note: --amp' not in capsys.readouterr().out


def cuda_model(*flags):
    from model.trainer import STCNModel
    from util.distributed import DistInfo
    from util.hyper_para import HyperParameters
    para = HyperParameters().parse(['--stage', '3', '--crop_size', '32', '--log_every', '1000',
                                    '--image_every', '1000', *flags])
    torch.manual_seed(0)
    return STCNModel(para, DistInfo(device=torch.device('cuda')))


def test_amp_training_step_scaler_and_checkpoint(tmp_path):
    model = cuda_model('--semi', '--use_teacher', '--end_warm', '1', '--phase2_train', '3',
                       '--phase2_start_update', '3')
    assert model.amp_dtype == torch.float16 and model.scaler.is_enabled()
    seen = []
    h = model.net.decoder.pred.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    try:
        for it in range(4):        # warm-up, semi with the teacher, phase 2 with refresh
            stats = step(model, make_batch(b=2), it)
            assert np.isfinite(stats['loss/total'])
    finally:
        h.remove()
    assert torch.float16 in seen and model.teacher_forward_calls >= 1
    assert all(torch.isfinite(p).all() for p in model.net.parameters())
    model.scaler.update(new_scale=2048.0)
    model.save_path = str(tmp_path / 'run')
    model.save(4)
    ck = torch.load(str(tmp_path / 'run_checkpoint.pth'), weights_only=False)
    assert ck['scaler'] is not None and ck['scaler']['scale'] == 2048.0
    again = cuda_model('--semi', '--use_teacher')
    assert again.load_model(str(tmp_path / 'run_checkpoint.pth')) == 4
    assert again.scaler.get_scale() == 2048.0
    step(again, make_batch(b=2), 4)


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_nccl_process_group_one_rank():
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from model.triplet import TripletModule
    from model.network import STCN
    from util.distributed import DistInfo, all_gather_objects, average_over_ranks
    if not dist.is_nccl_available():
        pytest.skip('this torch build has no NCCL')
    dist.init_process_group('nccl', init_method=f'tcp://127.0.0.1:{_free_port()}', rank=0,
                            world_size=1, device_id=torch.device('cuda', 0))
    try:
        x = torch.arange(4.0, device='cuda')
        dist.all_reduce(x)
        assert x.tolist() == [0.0, 1.0, 2.0, 3.0]
        info = DistInfo(rank=0, world_size=1, device=torch.device('cuda'))
        assert all_gather_objects({'a': 1}, info) == [{'a': 1}]
        assert average_over_ranks({'loss': 2.0}, info) == {'loss': 2.0}
        torch.manual_seed(0)
        net = STCN().cuda().eval()
        ddp = DistributedDataParallel(TripletModule(net), device_ids=[0])
        b = make_batch(b=1)
        out = ddp(b['rgb'].cuda(), b['gt'][:, 0].cuda(), b['sec_gt'][:, 0].cuda(),
                  b['selector'].cuda())
        out['logits_2'].float().mean().backward()
        grads = [p.grad for p in net.parameters() if p.requires_grad]
        assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)
    finally:
        dist.destroy_process_group()


def test_pinned_prefetch_of_test_videos(tmp_path):
    from dataset.davis_test_dataset import DAVISTestDataset
    from dataset.eval_dataset import prefetch
    davis_tree(str(tmp_path / 'DAVIS'), t=3)
    ds = DAVISTestDataset(str(tmp_path / 'DAVIS'), 2017, 'val')
    videos = list(prefetch(ds, pin_memory=True))
    assert videos and all(v.images.is_pinned() for v in videos)


def test_training_batches_are_pinned(tmp_path):
    from dataset.training_data import ModeData
    from util.distributed import DistInfo
    from util.resume import close_batches
    from util.hyper_para import HyperParameters
    from scripts.data.synthetic_data import generate
    d = generate(tmp_path, 'davis', videos=3, frames=5, height=48, width=64, objects=2,
                 val_videos=1)
    y = generate(tmp_path, 'youtube', videos=2, frames=5, height=48, width=64, objects=2,
                 val_videos=0)
    para = HyperParameters().parse(['--stage', '3', '--crop_size', '32', '-b', '2',
                                    '--num_workers', '1', '--davis_root', d['root'],
                                    '--yv_root', y['root'], *NO_SUBSETS])
    data = ModeData(para, 'base', DistInfo(device=torch.device('cuda')))
    it = iter(data.loader)
    try:
        batch = next(it)
    finally:
        close_batches(it)
    assert batch['rgb'].is_pinned() and batch['cls_gt'].is_pinned()
