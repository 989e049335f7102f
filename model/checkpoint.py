"""The one checkpoint loader used by every script.

Accepts a plain state_dict, a resume checkpoint ({'network': state_dict, ...}) or a DDP
state_dict ('module.' prefix). Maps single-object (stage-0) weights, whose value encoder takes
4 input channels, to the multi-object network (5 channels): the extra channel is orthogonally
initialised for training and zero for evaluation; the reverse direction drops that channel.
A mismatch ends in one UserError naming the file, the missing/unexpected keys and bad shapes.

Loading never runs code: torch.load with weights_only=True, and the only globals allowed
beyond torch's own (tensors, numbers, strings, containers) are those a numpy RNG state needs.
Weights holding NaN or Inf, sparse tensors and integer tensors where the network holds floats
are refused.
"""
import pickle
import re

import numpy as np
import torch
import torch.nn as nn

from util.errors import UserError

VALUE_CONV1 = 'value_encoder.conv1.weight'


def _numpy_globals():
    """numpy's array reconstruction and the dtypes of an RNG state (uint32 key, float64)."""
    core = getattr(np, '_core', None) or np.core
    return [core.multiarray._reconstruct, np.ndarray, np.dtype,
            type(np.dtype(np.uint32)), type(np.dtype(np.int64)), type(np.dtype(np.float64))]


def _refused_globals(path):
    """The globals of a checkpoint outside the allow-list (read without unpickling)."""
    try:
        found = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:       # not a zip checkpoint: the load error tells what it is
        return []
    allowed = {f'{g.__module__}.{g.__qualname__}' for g in _numpy_globals()}
    allowed |= {n.replace('numpy.core.', 'numpy._core.') for n in allowed}
    return [g for g in found if g not in allowed]


def read_checkpoint(path):
    """torch.load on CPU, weights only (never runs code from the file); UserError naming the
    file when it is missing, unreadable or holds objects other than weights and RNG states."""
    try:
        with torch.serialization.safe_globals(_numpy_globals()):
            return torch.load(path, map_location='cpu', weights_only=True)
    except FileNotFoundError as e:
        raise UserError(f'{path}: checkpoint not found') from e
    except IsADirectoryError as e:
        raise UserError(f'{path}: checkpoint is a folder, not a file') from e
    except pickle.UnpicklingError as e:
        found = _refused_globals(path)
        what = ', '.join(found[:3]) if found else re.sub(r'\s+', ' ', str(e))[-200:]
        raise UserError(f'{path}: refused: the checkpoint holds objects other than tensors, '
                        f'numbers, strings and containers ({what}); loading it could run code'
                        ) from e
    except Exception as e:          # torch raises many types for damaged or foreign files
        raise UserError(f'{path}: cannot read checkpoint: not a PyTorch checkpoint, or damaged '
                        f'({type(e).__name__}: {e})') from e


def check_kinds(state, net, source):
    """UserError naming the first tensor that is sparse (or of another layout) or not a float
    where the network holds dense floats: loading would fail in the middle, or silently
    round integers into weights."""
    for k, v in net.state_dict().items():
        t = state.get(k)
        if t is None:
            continue
        if t.layout != torch.strided:
            raise UserError(f'{source}: tensor {k} is {str(t.layout).replace("torch.", "")}, '
                            'the network needs dense tensors (the checkpoint is not weights '
                            'this code wrote)')
        if v.is_floating_point() and not t.is_floating_point():
            raise UserError(f'{source}: tensor {k} holds {str(t.dtype).replace("torch.", "")} '
                            'values where the network has floating-point weights (the '
                            'checkpoint is not weights this code wrote)')


def check_finite(state, source):
    """UserError naming the first parameter/buffer holding NaN or Inf."""
    for k, v in state.items():
        if v.is_floating_point() and not bool(torch.isfinite(v).all()):
            raise UserError(f'{source}: weights hold NaN or Inf ({k}); the checkpoint is '
                            'unusable (a diverged or corrupted training run)')


def extract_state_dict(obj, source='checkpoint'):
    """The network state_dict inside a loaded checkpoint object (any of the accepted forms)."""
    if isinstance(obj, dict) and isinstance(obj.get('network'), dict):
        obj = obj['network']
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise UserError(f'{source}: not a state_dict (expected tensors by parameter name)')
    if obj and all(k.startswith('module.') for k in obj):
        obj = {k[len('module.'):]: v for k, v in obj.items()}
    return obj


def adapt_value_channels(state, net, for_training):
    """Pad or trim value_encoder.conv1.weight's input channels to what `net` expects."""
    want = net.state_dict().get(VALUE_CONV1)
    have = state.get(VALUE_CONV1)
    if want is None or have is None or have.dim() != 4 or have.shape[1] == want.shape[1]:
        return state
    state = dict(state)
    c_have, c_want = have.shape[1], want.shape[1]
    if c_have == 4 and c_want == 5:
        pad = torch.zeros(have.shape[0], 1, *have.shape[2:], dtype=have.dtype)
        if for_training:
            nn.init.orthogonal_(pad)
        state[VALUE_CONV1] = torch.cat([have, pad], 1)
    elif c_have == 5 and c_want == 4:
        state[VALUE_CONV1] = have[:, :4].contiguous()   # drop the "other objects" channel
    return state


def check_compatible(state, net, source):
    """Raise one UserError listing every missing/unexpected key and wrong shape."""
    expected = net.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [f'{k} {list(state[k].shape)} (network expects {list(v.shape)})'
              for k, v in expected.items() if k in state and state[k].shape != v.shape]
    if not (missing or unexpected or shapes):
        return

    def listing(name, items):
        more = f' and {len(items) - 5} more' if len(items) > 5 else ''
        return f'{len(items)} {name}: ' + ', '.join(items[:5]) + more
    parts = [listing(n, i) for n, i in (('missing keys', missing), ('unexpected keys', unexpected),
                                        ('wrong shapes', shapes)) if i]
    raise UserError(f'{source}: does not fit {type(net).__module__}.{type(net).__name__}: '
                    + '; '.join(parts))


def load_network(net, checkpoint, for_training=False):
    """Load `checkpoint` (a path or an already loaded object) into `net`, on net's device."""
    source = checkpoint if isinstance(checkpoint, str) else 'checkpoint'
    obj = read_checkpoint(checkpoint) if isinstance(checkpoint, str) else checkpoint
    state = adapt_value_channels(extract_state_dict(obj, source), net, for_training)
    check_compatible(state, net, source)
    check_kinds(state, net, source)
    check_finite(state, source)
    net.load_state_dict(state)
    return net
