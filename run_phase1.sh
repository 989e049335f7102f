#!/usr/bin/env bash
# Phase 1: semi-supervised STCN training from two labeled frames per video (the paper's
# settings: stage 3 from the static-image checkpoint, mean teacher, pseudo labels >= 0.9).
# Overridable: GPUS (0,1) NPROC (2) PORT (9846) ID (phase1) LOAD (ckpts/stcn_s0.pth)
#   YV_DATA (util/yv_rand_2frames.json) DAVIS_DATA (util/davis_rand_2frames.json)
#   YV_ROOT (../YouTube) DAVIS_ROOT (../DAVIS) PYTHON (python); extra flags are passed on.
# One GPU with enough memory: NPROC=1 GPUS=0 bash run_phase1.sh -b 8
set -eu    # POSIX: the original README runs it with sh
cd "$(dirname "$0")"
CUDA_VISIBLE_DEVICES=${GPUS:-0,1} OMP_NUM_THREADS=${OMP_NUM_THREADS:-4} \
"${PYTHON:-python}" -m torch.distributed.run --master_port "${PORT:-9846}" \
    --nproc_per_node="${NPROC:-2}" train.py --stage 3 \
    --id "${ID:-phase1}" \
    --load_network "${LOAD:-ckpts/stcn_s0.pth}" \
    --yv_root "${YV_ROOT:-../YouTube}" --davis_root "${DAVIS_ROOT:-../DAVIS}" \
    --yv_data "${YV_DATA:-util/yv_rand_2frames.json}" \
    --davis_data "${DAVIS_DATA:-util/davis_rand_2frames.json}" \
    --semi \
    --semi_thres_upper 0.9 \
    --end_warm 70000 \
    --use_teacher --ema_alpha 0.995 "$@"
