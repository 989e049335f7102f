"""The one checkpoint loader used by every script.

Accepts a plain state_dict, a resume checkpoint ({'network': state_dict, ...}) or a DDP
state_dict ('module.' prefix). Maps single-object (stage-0) weights, whose value encoder takes
4 input channels, to the multi-object network (5 channels): the extra channel is orthogonally
initialised for training and zero for evaluation; the reverse direction drops that channel.
A mismatch ends in one UserError naming the file, the missing/unexpected keys and bad shapes.
"""
import pickle

import torch
import torch.nn as nn

from util.errors import UserError

VALUE_CONV1 = 'value_encoder.conv1.weight'


def read_checkpoint(path):
    """torch.load on CPU with a clear error; prefers weights_only, falls back for resume files."""
    try:
        try:
            return torch.load(path, map_location='cpu', weights_only=True)
        except pickle.UnpicklingError:
            return torch.load(path, map_location='cpu', weights_only=False)
    except FileNotFoundError as e:
        raise UserError(f'{path}: checkpoint not found') from e
    except Exception as e:
        raise UserError(f'{path}: cannot read checkpoint ({type(e).__name__}: {e})') from e


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
    net.load_state_dict(state)
    return net
