#!/usr/bin/env bash
# The GPU checks in one run (about 6-8 minutes on one H100 / H200):
#   1. the CUDA tests (pytest -m cuda): AMP inference fp16 and bf16, an AMP training step with
#      the gradient scaler and its checkpoint, the NCCL process group on one rank, pinned
#      prefetch
#   2. inference at 480p, fp32 against AMP: scripts/bench/amp.py (FPS, J&F, mask agreement,
#      whole eval_davis.py processes) and scripts/bench/infer.py (ours against the original
#      loop, fp32 and AMP, time per part)
#   3. the training step at batch 4 / 384x384, fp32 against AMP: plain, semi, phase 2
#   4. the data pipeline with 1 / 4 / 8 workers against the measured GPU step time
# Every result goes to $OUT (gpu_check_out); a summary with the targets comes last. A step
# that fails is reported and the others still run; the exit status is the number of failures.
# Knobs: OUT, PYTHON (default: .venv/bin/python if present, else python3), DEVICE (cuda).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT=${OUT:-gpu_check_out}
DEVICE=${DEVICE:-cuda}
if [ -z "${PYTHON:-}" ]; then
    if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
mkdir -p "$OUT"
FAILED=0
START=$(date +%s)

step() {   # step NAME TIMEOUT_S CMD...: run, log to $OUT/NAME.log, count a failure
    local name=$1 limit=$2
    shift 2
    echo
    echo "== $name ($(( $(date +%s) - START )) s in): $*"
    timeout "$limit" "$@" 2>&1 | tee "$OUT/$name.log"
    local rc=${PIPESTATUS[0]}
    if [ "$rc" -ne 0 ]; then
        echo "!! $name failed with status $rc"
        FAILED=$((FAILED + 1))
    fi
}

"$PYTHON" - <<'EOF' || { echo "no CUDA device visible to $PYTHON: nothing checked"; exit 3; }
import sys
import torch
if not torch.cuda.is_available():
    sys.exit(1)
print(f'GPU: {torch.cuda.get_device_name(0)}, torch {torch.__version__}, '
      f'CUDA {torch.version.cuda}, bf16 {torch.cuda.is_bf16_supported()}')
EOF
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true

# 1. CUDA tests
step cuda_tests 240 "$PYTHON" -m pytest -q -m cuda tests/inference/test_cuda.py -rs

# 2. inference at 480p: synthetic DAVIS (2 val videos x 24 frames, 2 objects), seeded weights
#    with calibrated batch norm (no trained weights here: speed does not depend on them)
step data480 120 "$PYTHON" -m scripts.data.synthetic --out "$OUT/data" --layout davis --videos 3 \
    --val_videos 2 --frames 24 --height 480 --width 854 --objects 2 --seed 7
step weights 120 "$PYTHON" -m model.init_weights --out "$OUT/init.pth" --seed 0 \
    --calibrate_bn "$OUT/data/DAVIS/2017/trainval/JPEGImages/480p" --calibrate_frames 16
step amp_480p 240 "$PYTHON" -m scripts.bench.amp --model "$OUT/init.pth" \
    --davis_path "$OUT/data/DAVIS" --device "$DEVICE" --processes 2 --json "$OUT/amp_480p.json"
step infer_fp32 150 "$PYTHON" -m scripts.bench.infer --device "$DEVICE" --frames 24 \
    --objects 1 2 --repeats 2 --mask_gain 100 --json "$OUT/infer_fp32.json"
step infer_amp 150 "$PYTHON" -m scripts.bench.infer --device "$DEVICE" --frames 24 \
    --objects 1 2 --repeats 2 --mask_gain 100 --amp --json "$OUT/infer_amp.json"

# 3. training step, batch 4, 384x384, fp32 against AMP (fp16 + gradient scaler)
step train_amp 240 "$PYTHON" -m scripts.bench.train --device "$DEVICE" --batch 4 --crop 384 \
    --iters 5 --versus fp32 --configs plain semi phase2 --json "$OUT/train_amp.json"

# 4. data pipeline: 1 / 4 / 8 workers against the AMP step time measured above
STEP_S=$("$PYTHON" -c "import json; r = json.load(open('$OUT/train_amp.json'))['configs']; \
print(min(r[c]['amp']['sec_per_it'] for c in r))" 2>/dev/null || echo 0.25)
step data_workers 240 "$PYTHON" -m scripts.bench.data --modes full semi phase2 --batch 4 \
    --crop 384 --samples 8 --step_time "$STEP_S" --workers 1 4 8 --batches 12 \
    --json "$OUT/data_workers.json"

echo
echo "== summary ($(( $(date +%s) - START )) s; $FAILED failed step(s)); targets: inference AMP >= 1.6x fp32," \
     "J&F within 0.2 points; training AMP step >= 1.5x fp32"
"$PYTHON" - "$OUT" <<'EOF'
import json
import os
import sys
out = sys.argv[1]


def load(name):
    try:
        with open(os.path.join(out, name)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


a = load('amp_480p.json')
if a:
    print(f"inference 480p ({a['device']}): AMP {a['amp_dtype']} x{a['speedup']:.2f} FPS, "
          f"J&F {a['ways']['fp32']['J&F-Mean']:.4f} -> {a['ways']['amp']['J&F-Mean']:.4f} "
          f"({100 * a['jf_diff']:+.2f} points), masks differ on "
          f"{100 * a['pixels_differ']:.3f} % of the pixels; whole eval_davis.py "
          f"amp/fp32 time {a['processes']['ratio']:.3f}")
f, m = load('infer_fp32.json'), load('infer_amp.json')
if f and m:
    try:
        print(f"infer.py all videos: ours fp32 {f['total']['ours_fps']:.2f} FPS, ours AMP "
              f"{m['total']['ours_fps']:.2f} FPS (x{m['total']['ours_fps'] / f['total']['ours_fps']:.2f})")
    except (KeyError, TypeError, ZeroDivisionError):
        print('infer.py: see infer_fp32.json / infer_amp.json')
t = load('train_amp.json')
if t:
    for name, r in t['configs'].items():
        print(f"train step {name}: fp32 {r['fp32']['sec_per_it']:.3f} s, AMP "
              f"{r['amp']['sec_per_it']:.3f} s, x{r['speedup']:.2f}")
d = load('data_workers.json')
if d:
    for mode, r in d['modes'].items():
        rates = ', '.join(f'{w} workers {v:.2f} batches/s' for w, v in r.get('loader', {}).items())
        print(f"data {mode}: {r['samples_per_s_per_worker']:.2f} samples/s per worker, needs "
              f"{r.get('workers_needed')} workers for a {d['args']['step_time']:.3f} s step; {rates}")
EOF
exit "$FAILED"
