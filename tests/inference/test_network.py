"""The networks: checkpoint keys and shapes of the published format, stage-0 loading, the
forward passes of training and inference."""
import os

import pytest
import torch

from helpers import segment_with_query
from model.aggregate import aggregate
from model.checkpoint import load_network
from model.eval_network import STCN as EvalSTCN
from model.memory import get_affinity, readout, softmax_full, softmax_topk
from model.network import STCN
from util.errors import UserError

KEYS_TSV = os.path.join(os.path.dirname(os.path.dirname(__file__)), 'data', 'stcn_checkpoint_keys.tsv')


def expected_keys():
    with open(KEYS_TSV) as f:
        return [tuple(line.rstrip('\n').split('\t')) for line in f if not line.startswith('#')]


def describe(net):
    return [(k, str(list(v.shape)), str(v.dtype).replace('torch.', ''))
            for k, v in net.state_dict().items()]


@pytest.fixture(scope='module')
def nets():
    torch.manual_seed(0)
    return {'train': STCN(single_object=False).eval(), 'single': STCN(single_object=True).eval(),
            'eval': EvalSTCN().eval()}


def test_state_dict_matches_published_format(nets):
    exp = expected_keys()
    assert len(exp) == 405
    assert describe(nets['train']) == exp
    assert describe(nets['eval']) == exp


def test_single_object_differs_only_in_value_conv1(nets):
    exp = dict((k, s) for k, s, _ in expected_keys())
    got = dict((k, s) for k, s, _ in describe(nets['single']))
    assert got.keys() == exp.keys()
    diff = {k for k in exp if exp[k] != got[k]}
    assert diff == {'value_encoder.conv1.weight'}
    assert got['value_encoder.conv1.weight'] == '[64, 4, 7, 7]'


def test_checkpoint_roundtrip_between_networks(nets, tmp_path):
    path = str(tmp_path / 'train.pth')
    torch.save(nets['train'].state_dict(), path)
    ev = load_network(EvalSTCN(), path)
    for k, v in nets['train'].state_dict().items():
        assert torch.equal(ev.state_dict()[k], v), k
    # eval -> training network, via a DDP-style and a resume-style checkpoint
    ddp = {'module.' + k: v for k, v in ev.state_dict().items()}
    torch.save({'it': 5, 'network': ddp}, path)
    tr = load_network(STCN(), path, for_training=True)
    assert torch.equal(tr.decoder.pred.weight, nets['train'].decoder.pred.weight)


def test_stage0_checkpoint_loads_into_both(nets, tmp_path):
    path = str(tmp_path / 's0.pth')
    single = nets['single'].state_dict()
    torch.save(single, path)
    w4 = single['value_encoder.conv1.weight']
    ev = load_network(EvalSTCN(), path)                       # evaluation: zero channel
    w5 = ev.value_encoder.conv1.weight.detach()
    assert torch.equal(w5[:, :4], w4) and torch.count_nonzero(w5[:, 4]) == 0
    tr = load_network(STCN(), path, for_training=True)       # training: orthogonal channel
    w5 = tr.value_encoder.conv1.weight.detach()
    assert torch.equal(w5[:, :4], w4)
    flat = w5[:, 4].reshape(64, -1)                           # [64, 49]: orthonormal columns
    assert torch.allclose(flat.T @ flat, torch.eye(49), atol=1e-5)
    back = load_network(STCN(single_object=True), str(tmp_path / 's0.pth'))
    assert torch.equal(back.value_encoder.conv1.weight, w4)


def test_wrong_shape_checkpoint_fails_clearly(nets, tmp_path):
    sd = dict(nets['train'].state_dict())
    sd['decoder.pred.weight'] = torch.zeros(2, 256, 3, 3)
    del sd['key_comp.bias']
    sd['extra.weight'] = torch.zeros(1)
    path = str(tmp_path / 'bad.pth')
    torch.save(sd, path)
    with pytest.raises(UserError) as e:
        load_network(EvalSTCN(), path)
    msg = str(e.value)
    assert path in msg and 'decoder.pred.weight [2, 256, 3, 3]' in msg
    assert 'key_comp.bias' in msg and 'extra.weight' in msg
    (tmp_path / 'junk.pth').write_bytes(b'not a checkpoint')
    with pytest.raises(UserError, match='junk.pth'):
        load_network(EvalSTCN(), str(tmp_path / 'junk.pth'))
    with pytest.raises(UserError, match='not found'):
        load_network(EvalSTCN(), str(tmp_path / 'missing.pth'))


def test_training_forward_shapes(nets):
    net = nets['train']
    b, h, w = 1, 112, 192                                     # 100x180 padded to /16
    frames = torch.randn(b, 3, 3, h, w)
    with torch.no_grad():
        k16, f16_thin, f16, f8, f4 = net.encode_key(frames)
        assert k16.shape == (b, 64, 3, h // 16, w // 16)
        assert f16_thin.shape == (b, 3, 512, h // 16, w // 16)
        assert f16.shape == (b, 3, 1024, h // 16, w // 16)
        assert f8.shape == (b, 3, 512, h // 8, w // 8)
        assert f4.shape == (b, 3, 256, h // 4, w // 4)
        m = (torch.rand(b, 1, h, w) > 0.5).float()
        v1 = net.encode_value(frames[:, 0], f16[:, 0], m, 1 - m)
        v2 = net.encode_value(frames[:, 0], f16[:, 0], 1 - m, m)
        assert v1.shape == (b, 512, 1, h // 16, w // 16)
        mv = torch.stack([v1, v2], 1)                         # [B, 2, 512, 1, h, w]
        selector = torch.tensor([[1.0, 0.0]])
        logits, prob = net.segment(k16[:, :, 1], f16_thin[:, 1], f8[:, 1], f4[:, 1],
                                   k16[:, :, 0:1], mv, selector)
    assert logits.shape == (b, 3, h, w) and prob.shape == (b, 2, h, w)
    # the absent second object gets (near) zero probability
    assert prob[:, 1].max() < 1e-5


def test_eval_forward_shapes(nets):
    net = nets['eval']
    h, w = 112, 192
    frame = torch.randn(1, 3, h, w)
    with torch.no_grad():
        k16, v16, f16, f8, f4 = net.encode_key(frame)
        masks = (torch.rand(3, 1, h, w) > 0.7).float()
        values = net.encode_value(frame, f16, masks)
        assert values.shape == (3, 512, 1, h // 16, w // 16)
        prob = segment_with_query(net, k16.flatten(2), values.flatten(2), k16, v16, f8, f4)
    assert prob.shape == (3, 1, h, w)
    assert prob.min() >= 0 and prob.max() <= 1


def test_aggregate_sums_to_one():
    prob = torch.rand(2, 3, 8, 8)
    out = aggregate(prob, dim=1, return_logits=False)
    assert out.shape == (2, 4, 8, 8)
    assert torch.allclose(out.sum(1), torch.ones(2, 8, 8), atol=1e-6)
    # background is the product of (1 - p) before normalisation: certain objects win
    certain = torch.zeros(1, 2, 1, 1)
    certain[0, 1] = 1.0
    assert aggregate(certain, return_logits=False).argmax(1).item() == 2


def test_topk_equals_full_softmax_when_k_covers_memory():
    torch.manual_seed(1)
    mk, qk, mv = torch.randn(1, 64, 30), torch.randn(1, 64, 12), torch.randn(1, 512, 30)
    aff = get_affinity(mk, qk)
    full = readout(softmax_full(aff), mv)
    assert torch.allclose(readout(softmax_topk(aff, 30), mv), full, atol=1e-5)
    assert torch.allclose(readout(softmax_topk(aff, 100), mv), full, atol=1e-5)
    w = softmax_topk(aff, 5)
    assert (w > 0).sum(1).max() == 5 and torch.allclose(w.sum(1), torch.ones(1, 12))


def test_affinity_is_negative_distance_up_to_query_norm():
    mk, qk = torch.randn(1, 64, 7), torch.randn(1, 64, 5)
    aff = get_affinity(mk, qk)
    dist = ((mk[0][:, :, None] - qk[0][:, None, :]) ** 2).sum(0)      # [N, M]
    expected = (-dist + (qk[0] ** 2).sum(0)[None]) / 8.0
    assert torch.allclose(aff[0], expected, atol=1e-4)


def test_key_projection_orthogonal_init(nets):
    w = nets['eval'].key_proj.key_proj.weight.detach().reshape(64, -1)  # [64, 9216]
    assert torch.allclose(w @ w.T, torch.eye(64), atol=1e-4)
    assert torch.count_nonzero(nets['eval'].key_proj.key_proj.bias) == 0


def test_resnet50_trunk_is_torchvisions_draw_for_draw():
    """The key encoder's own ResNet-50 (no torchvision import at inference) has torchvision's
    parameter names, order and seeded random init, and leaves the generator where
    torchvision's does (so every seeded init after it is unchanged too)."""
    import torchvision
    from model.mod_resnet import ResNet50
    for seed in (0, 7):
        torch.manual_seed(seed)
        theirs = torchvision.models.resnet50(weights=None).state_dict()
        after_theirs = torch.rand(4)
        torch.manual_seed(seed)
        ours = ResNet50().state_dict()
        assert list(ours) == list(theirs)
        assert all(torch.equal(ours[k], theirs[k]) for k in theirs)
        assert torch.equal(torch.rand(4), after_theirs)


def test_imagenet_normalisation_is_torchvisions():
    import torchvision.transforms as T
    from dataset.range_transform import IMAGENET_MEAN, IMAGENET_STD, im_normalization
    x = torch.rand(2, 3, 9, 11)
    theirs = T.Normalize(IMAGENET_MEAN, IMAGENET_STD)
    for t in (x, x[0]):
        before = t.clone()
        assert torch.equal(im_normalization(t), theirs(t))
        assert torch.equal(t, before)                        # the input is left alone


def test_inference_does_not_import_torchvision():
    """torchvision's import pulls in torch._dynamo (~1.5 s of every eval process)."""
    import subprocess
    import sys
    code = ('import sys, eval_davis, eval_youtube, eval_generic, eval_youtube_phase2, '
            'eval_youtube_bank, '
            'inference_core, phase2.bank; print(sorted(m for m in sys.modules '
            'if m.startswith(("torchvision", "torch._dynamo"))))')
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = subprocess.run([sys.executable, '-c', code], cwd=root, capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == '[]'
