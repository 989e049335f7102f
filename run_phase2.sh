#!/usr/bin/env bash
# Phase 2: retrain STCN from the same starting weights on labeled + pseudo-labeled frames
# (the merged bank of run_intermediate.sh), refreshing pseudo labels online from 70k on.
# Overridable: GPUS (0,1) NPROC (2) PORT (9846) ID (phase2) LOAD (ckpts/stcn_s0.pth)
#   YV_DATA DAVIS_DATA (the two-frame JSONs) PHASE2_YV (../vos_phase2/phase1_merge_480p)
#   PHASE2_DAVIS (../vos_phase2/phase1_merge_davis) YV_ROOT DAVIS_ROOT PYTHON; extra flags pass on.
set -eu    # POSIX: the original README runs it with sh
cd "$(dirname "$0")"
CUDA_VISIBLE_DEVICES=${GPUS:-0,1} OMP_NUM_THREADS=${OMP_NUM_THREADS:-4} \
"${PYTHON:-python}" -m torch.distributed.run --master_port "${PORT:-9846}" \
    --nproc_per_node="${NPROC:-2}" train.py --stage 3 \
    --id "${ID:-phase2}" \
    --load_network "${LOAD:-ckpts/stcn_s0.pth}" \
    --yv_root "${YV_ROOT:-../YouTube}" --davis_root "${DAVIS_ROOT:-../DAVIS}" \
    --yv_data "${YV_DATA:-util/yv_rand_2frames.json}" \
    --davis_data "${DAVIS_DATA:-util/davis_rand_2frames.json}" \
    --phase2_yv "${PHASE2_YV:-../vos_phase2/phase1_merge_480p}" \
    --phase2_davis "${PHASE2_DAVIS:-../vos_phase2/phase1_merge_davis}" \
    --phase2_train 0 --phase2_thres 0.99 --phase2_start_update 70000 "$@"
