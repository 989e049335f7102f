"""The readout-only sweep and the per-optimisation ablations of scripts.bench.infer."""
import copy
import time

import torch
import torch.nn.functional as F

from inference_core import MemoryBank, sync
from model.memory import get_affinity, softmax_topk, topk_readout


def compare(a, b, repeats, device):
    """Min seconds of a() and of b(), each run once untimed, then alternating a, b, a, b."""
    best = [float('inf'), float('inf')]
    for fn in (a, b):
        fn()
    for _ in range(repeats):
        for i, fn in enumerate((a, b)):
            sync(device)
            start = time.perf_counter()
            fn()
            sync(device)
            best[i] = min(best[i], time.perf_counter() - start)
    return best


def readout_sweep(args, device):
    """Readout alone (affinity + top-k + weighted values) for growing memory, per K."""
    h, w = -(-args.height // 16), -(-args.width // 16)
    hw = h * w
    g = torch.Generator().manual_seed(args.seed)
    res = []
    with torch.inference_mode():
        for k in args.objects:
            for frames in args.sweep:
                n = frames * hw
                mk = torch.randn(1, 64, n, generator=g).to(device)
                qk = torch.randn(1, 64, hw, generator=g).to(device)
                rows = torch.randn(n, k * 512, generator=g).to(device)
                mv = rows.t().reshape(k, 512, n).contiguous()

                def ours():
                    topk_readout(mk, qk, rows, args.top_k)

                def base():
                    wts = softmax_topk(get_affinity(mk, qk), args.top_k)
                    torch.cat([torch.bmm(mv[i:i + 1], wts) for i in range(k)])
                row = {'objects': k, 'memory_frames': frames}
                if args.no_baseline:
                    row['ours_s'] = compare(ours, ours, args.repeats, device)[0]
                else:
                    row['base_s'], row['ours_s'] = compare(base, ours, args.repeats, device)
                    row['speedup'] = row['base_s'] / row['ours_s']
                res.append(row)
                print('  readout K={objects} memory {memory_frames:>3} frames: ours {ours_s:.4f} s'
                      .format(**row) + (f", base {row['base_s']:.4f} s, x{row['speedup']:.2f}"
                                        if 'base_s' in row else ''), flush=True)
    return res


def ablations(net, args, device):
    """Each optimisation alone, at this resolution, on the largest K of --objects."""
    k = max(args.objects)
    hp, wp = args.height + (-args.height) % 16, args.width + (-args.width) % 16
    h, w = hp // 16, wp // 16
    g = torch.Generator().manual_seed(args.seed)
    frame = torch.randn(1, 3, hp, wp, generator=g).to(device)
    masks = (torch.rand(k, 1, hp, wp, generator=g) > 0.5).float().to(device)
    reps = max(2, args.repeats)
    res = {}

    def report(name, a, b, adopted):
        ta, tb = compare(a, b, reps, device)
        res[name] = {'before_s': ta, 'after_s': tb, 'speedup': ta / tb, 'adopted': adopted}
        print(f'  {name:<46} {ta:8.4f} s -> {tb:8.4f} s  x{ta / tb:.2f}  {adopted}', flush=True)

    with torch.inference_mode():
        _, v16, f16, f8, f4 = net.encode_key(frame)
        mem = torch.randn(k, 512, h, w, generator=g).to(device)

        def dec_ref():
            for i in range(k):
                torch.sigmoid(net.decoder(torch.cat([mem[i:i + 1], v16], 1), f8, f4))
        report(f'decode K={k}: module loop -> shared skip, in place',
               dec_ref, lambda: net.decode(mem, v16, f8, f4, per_object=True),
               'yes (bitwise equal)')
        c = net.decoder.compress
        w1m, w1q = c.conv1.weight[:, :512].contiguous(), c.conv1.weight[:, 512:].contiguous()
        wdm, wdq = c.downsample.weight[:, :512].contiguous(), c.downsample.weight[:, 512:].contiguous()

        def compress_ref():
            for i in range(k):
                c(torch.cat([mem[i:i + 1], v16], 1))

        def compress_split():       # conv(cat(a, b)) = conv_a(a) + conv_b(b): b is shared
            q1 = F.conv2d(F.relu(v16), w1q, c.conv1.bias, padding=1)
            qd = F.conv2d(v16, wdq, c.downsample.bias, padding=1)
            for i in range(k):
                m = mem[i:i + 1]
                r = F.conv2d(F.relu(m), w1m, None, padding=1).add_(q1)
                c.conv2(r.relu_()).add_(F.conv2d(m, wdm, None, padding=1).add_(qd))
        report(f'decoder compress K={k}: split off the shared query half', compress_ref,
               compress_split, 'no (not bitwise, small)')
        report(f'decode K={k}: per object -> one batch',
               lambda: net.decode(mem, v16, f8, f4, per_object=True),
               lambda: net.decode(mem, v16, f8, f4, per_object=False), 'CUDA only')
        report(f'value K={k}: per object -> one batch',
               lambda: net.encode_value(frame, f16, masks, per_object=True),
               lambda: net.encode_value(frame, f16, masks, per_object=False), 'CUDA only')

        cl = copy.deepcopy(net).to(memory_format=torch.channels_last)
        frame_cl = frame.contiguous(memory_format=torch.channels_last)
        report('key encoding: NCHW -> channels_last', lambda: net.encode_key(frame),
               lambda: cl.encode_key(frame_cl), 'no (not bitwise)')
        mem_cl = mem.contiguous(memory_format=torch.channels_last)
        _, v16c, f16c, f8c, f4c = cl.encode_key(frame_cl)
        report(f'decode K={k}: NCHW -> channels_last',
               lambda: net.decode(mem, v16, f8, f4), lambda: cl.decode(mem_cl, v16c, f8c, f4c),
               'no (not bitwise)')

        # memory: 8 permanent frames + a temporary entry, as include_last reads it each frame
        keys = [torch.randn(1, 64, h * w, generator=g).to(device) for _ in range(9)]
        vals = [torch.randn(k, 512, h * w, generator=g).to(device) for _ in range(9)]

        def grow_cat():
            mk, mv = keys[0], vals[0]
            for i in range(1, 8):
                mk, mv = torch.cat([mk, keys[i]], 2), torch.cat([mv, vals[i]], 2)
            torch.cat([mk, keys[8]], 2), torch.cat([mv, vals[8]], 2)

        def grow_bank():
            bank = MemoryBank(k, 64, 512, h * w, 4, device, torch.float32)
            for i in range(8):
                bank.add(keys[i], vals[i], i)
            bank.add(keys[8], vals[8], 8, temp=True)
            bank.used()
        report('memory: torch.cat growth -> preallocated bank', grow_cat, grow_bank, 'yes')

    def frame_fn(mode):
        def fn():
            with mode():
                _, v16_, _, f8_, f4_ = net.encode_key(frame)
                net.decode(mem[:1], v16_, f8_, f4_)
        return fn
    report('key+decode K=1: no_grad -> inference_mode', frame_fn(torch.no_grad),
           frame_fn(torch.inference_mode), 'yes')
    return res
