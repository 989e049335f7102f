#!/usr/bin/env bash
# The whole two-shot pipeline at toy scale on synthetic data (CPU, or GPU when present):
# data -> stage 0 (static images) -> phase 1 -> four intermediate passes + merge -> phase 2 ->
# evaluation, then one table.
# Every step's command is echoed so it can be rerun alone. Knobs (environment variables):
#   OUT (demo_out)  ITERS0 / ITERS1 / ITERS2 (stage-0 / phase-1 / phase-2 iterations)  STATIC_IMAGES (40)
#   BATCH  CROP  LR  SEED  DEVICE
#   DAVIS_VIDEOS (10) DAVIS_VAL (4 of them held out for validation)  YT_VIDEOS (6)  FRAMES (12)  HEIGHT WIDTH
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/venv.sh"        # builds .venv if needed, cd to the repo

OUT=${OUT:-demo_out}
ITERS0=${ITERS0:-60}
ITERS1=${ITERS1:-120}
ITERS2=${ITERS2:-120}
STATIC_IMAGES=${STATIC_IMAGES:-40}
BATCH=${BATCH:-4}
CROP=${CROP:-64}
LR=${LR:-1e-4}
SEED=${SEED:-0}
DAVIS_VIDEOS=${DAVIS_VIDEOS:-10}
DAVIS_VAL=${DAVIS_VAL:-4}
YT_VIDEOS=${YT_VIDEOS:-6}
FRAMES=${FRAMES:-12}
HEIGHT=${HEIGHT:-96}
WIDTH=${WIDTH:-160}
DEV_ARGS=()
[ -n "${DEVICE:-}" ] && DEV_ARGS=(--device "$DEVICE")
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(nproc)}
START=$(date +%s)

run() { echo; echo "+ $*"; "$@"; }
latest() { ls -t "$OUT"/saves/*_"$1"/*_"$1"_"$2".pth | head -n 1; }

rm -rf "$OUT"
mkdir -p "$OUT"
DATA=$OUT/data
DAVIS=$DATA/DAVIS
YT=$DATA/YouTube

echo "== 1. synthetic two-shot data (DAVIS and YouTube layouts; the split and sparse labels come with it)"
run python -m scripts.data.synthetic --out "$DATA" --layout davis --videos "$DAVIS_VIDEOS" --val_videos "$DAVIS_VAL" \
    --frames "$FRAMES" --height "$HEIGHT" --width "$WIDTH" --objects 2 --seed "$SEED"
run python -m scripts.data.synthetic --out "$DATA" --layout youtube --videos "$YT_VIDEOS" --val_videos 2 \
    --frames "$FRAMES" --height "$HEIGHT" --width "$WIDTH" --objects 2 --seed "$((SEED + 1))"
run python -m scripts.data.synthetic --out "$DATA" --layout static --videos "$STATIC_IMAGES" \
    --height "$HEIGHT" --width "$WIDTH" --seed "$((SEED + 2))"
run python -m scripts.data.check_dataset --root "$DAVIS" --layout davis \
    --split_json "$DAVIS/2017/davis_rand_2frames.json" --sparse "$DAVIS/2017/phase2/davis_gt"

echo "== 2. starting weights: no ImageNet weights offline, so a seeded random init with batch-norm"
echo "      statistics calibrated on training frames (no labels used), then stage 0 on the static"
echo "      images (the paper's phases start from stage-0 weights, ckpts/stcn_s0.pth)"
run python -m model.init_weights --out "$OUT/init.pth" --seed "$SEED" \
    --calibrate_bn "$YT/train_480p/JPEGImages" --calibrate_frames 32
TRAIN=(--lr "$LR" -b "$BATCH" --crop_size "$CROP" --num_workers 1 --save_root "$OUT/saves"
       --log_every 10 --save_every 100000 "${DEV_ARGS[@]}")
# schedule N: N iterations, lr drop at 4/5; toy scale: the bootstrapped CE reaches its
# hardest-15% regime after a fifth of the run
schedule() { SCHEDULE=(-i "$1" --steps "$(($1 * 4 / 5))" --bce_start_warm 0 --bce_end_warm "$(($1 / 5 + 1))"); }
schedule "$ITERS0"
run python train.py --id s0 --stage 0 --static_root "$DATA/static" --load_network "$OUT/init.pth" \
    "${TRAIN[@]}" "${SCHEDULE[@]}"
S0=$(latest s0 "$ITERS0")

COMMON=(--stage 3 --davis_root "$DAVIS" --yv_root "$YT"
        --davis_data "$DAVIS/2017/davis_rand_2frames.json" --yv_data "$YT/yv_rand_2frames.json"
        --load_network "$S0" "${TRAIN[@]}")

echo "== 3. phase 1: semi-supervised training with the EMA teacher, from the stage-0 weights"
schedule "$ITERS1"
run python train.py --id phase1 "${COMMON[@]}" "${SCHEDULE[@]}" \
    --semi --semi_thres_upper 0.9 --end_warm "$((ITERS1 / 2))" --use_teacher --ema_alpha 0.995
P1=$(latest phase1 "$ITERS1")

echo "== 4. intermediate inference: four passes per training video, then the merge"
export MODEL=$P1 YV_ROOT=$YT DAVIS_ROOT=$DAVIS OUT_ROOT=$OUT/vos_phase2 PYTHON=python
export EVAL_ARGS="${DEV_ARGS[*]}"
run bash run_intermediate.sh youtube
run bash run_intermediate.sh davis

echo "== 5. phase 2: retrain from the same stage-0 weights on labeled + pseudo-labeled frames"
schedule "$ITERS2"
run python train.py --id phase2 "${COMMON[@]}" "${SCHEDULE[@]}" \
    --phase2_root "$OUT/vos_phase2" --phase2_yv phase1_merge_480p --phase2_davis phase1_merge_davis \
    --phase2_train 0 --phase2_thres 0.99 --phase2_start_update "$((ITERS2 / 2))"
P2=$(latest phase2 "$ITERS2")

echo "== 6. evaluation on the held-out DAVIS-layout validation videos, and of the bank"
for name in untrained s0 phase1 phase2; do
    case $name in untrained) ckpt=$OUT/init.pth ;; s0) ckpt=$S0 ;; phase1) ckpt=$P1 ;; phase2) ckpt=$P2 ;; esac
    run python eval_davis.py --model "$ckpt" --davis_path "$DAVIS" --split val \
        --output "$OUT/eval/$name" --evaluate "${DEV_ARGS[@]}"
done
run python -m scripts.evaluate --gt_path "$DAVIS/2017/trainval" --split train \
    --imageset "$DAVIS/2017/trainval/ImageSets/2017/train.txt" \
    --pred_path "$OUT/vos_phase2/phase1_merge_davis/Annotations" --out "$OUT/eval/bank"

echo
python scripts/demo_table.py --eval_dir "$OUT/eval" --seconds "$(( $(date +%s) - START ))"
echo "all outputs are under $OUT/"

echo
echo "== 7. pictures: contact sheets (masks over frames) of a validation video and of the bank"
TV=$DAVIS/2017/trainval
VAL_VIDEO=$(head -n 1 "$TV/ImageSets/2017/val.txt")
TRAIN_VIDEO=$(head -n 1 "$TV/ImageSets/2017/train.txt")
run python -m scripts.visualize --frames "$TV/JPEGImages/480p" --videos "$VAL_VIDEO" \
    --masks "$TV/Annotations/480p" --masks "$OUT/eval/untrained" --masks "$OUT/eval/phase1" \
    --masks "$OUT/eval/phase2" --labels "ground truth" untrained "phase 1" "phase 2" \
    --out "$OUT/pictures/val_$VAL_VIDEO.png"
BANK_ROWS=(--masks "$TV/Annotations/480p" --masks "$DAVIS/2017/phase2/davis_gt")
BANK_LABELS=("hidden labels" "two-shot labels")
for pass in left leftsecgt right rightsecgt; do       # the pass trees, where they were kept
    if [ -d "$OUT/vos_phase2/phase1_${pass}_davis/Annotations/$TRAIN_VIDEO" ]; then
        BANK_ROWS+=(--masks "$OUT/vos_phase2/phase1_${pass}_davis/Annotations")
        BANK_LABELS+=("pass $pass")
    fi
done
run python -m scripts.visualize --frames "$TV/JPEGImages/480p" --videos "$TRAIN_VIDEO" \
    "${BANK_ROWS[@]}" --masks "$OUT/vos_phase2/phase1_merge_davis/Annotations" \
    --labels "${BANK_LABELS[@]}" "bank (merged)" --out "$OUT/pictures/bank_$TRAIN_VIDEO.png"
echo "contact sheet, validation video $VAL_VIDEO: $OUT/pictures/val_$VAL_VIDEO.png"
echo "contact sheet, bank of training video $TRAIN_VIDEO: $OUT/pictures/bank_$TRAIN_VIDEO.png"
