#!/usr/bin/env bash
# Intermediate inference of two-shot VOS: the four propagations per training video
# (left, leftsecgt, right, rightsecgt; docs/method.md) with the phase-1 model, then the merge
# into one pseudo-label bank. Each pass is the original's command line (eval_youtube_phase2.py
# --output_all, --res -1 for YouTube, --davis --mem_every 5 for DAVIS) with the roots spelled out.
#
#   bash run_intermediate.sh youtube            # four passes + merge
#   bash run_intermediate.sh davis left right   # only these passes (no merge)
#   bash run_intermediate.sh youtube merge      # only the merge
#   bash run_intermediate.sh youtube bank       # the merged bank in one run, no pass trees:
#       each pass only as far as the merge uses it (eval_youtube_bank.py), byte for byte
#       the same phase1_merge_* folder with about half the frames segmented
#
# Everything is overridable by environment variables (defaults: the paper's layout):
#   MODEL       phase-1 weights (default: saves/phase1.pth, the original scripts' path, if it
#               exists, else the newest saves/*_phase1/*_phase1_150000.pth: the student)
#   YV_ROOT     ../YouTube          DAVIS_ROOT  ../DAVIS
#   YV_SPARSE   $YV_ROOT/phase2/yv_gt_480p     DAVIS_SPARSE <DAVIS 2017>/phase2/davis_gt
#   (DAVIS_ROOT may be the folder holding 2017/ or the 2017 folder itself)
#   OUT_ROOT    ../vos_phase2       GPUS (CUDA_VISIBLE_DEVICES, default 0)   PYTHON (python)
# Several GPUs (GPUS=0,1,2,3): each inference step runs one process per GPU, each on every
# N-th video (--shard j/N), and goes on once all have finished.
# Extra eval flags can be given in EVAL_ARGS (e.g. EVAL_ARGS="--amp --device cpu").
set -euo pipefail
cd "$(dirname "$0")"
DATASET=${1:?usage: run_intermediate.sh youtube|davis [left leftsecgt right rightsecgt merge | bank]}
shift
STEPS=("$@")
[ ${#STEPS[@]} -eq 0 ] && STEPS=(left leftsecgt right rightsecgt merge)

PYTHON=${PYTHON:-python}
if [ -z "${MODEL:-}" ] && [ -f saves/phase1.pth ]; then MODEL=saves/phase1.pth; fi
MODEL=${MODEL:-$(ls -t saves/*_phase1/*_phase1_150000.pth 2>/dev/null | head -n 1 || true)}
YV_ROOT=${YV_ROOT:-../YouTube}
DAVIS_ROOT=${DAVIS_ROOT:-../DAVIS}
OUT_ROOT=${OUT_ROOT:-../vos_phase2}
IFS=, read -r -a GPU_LIST <<< "${GPUS:-${CUDA_VISIBLE_DEVICES:-0}}"

case "$DATASET" in
    youtube)
        SPARSE=${YV_SPARSE:-$YV_ROOT/phase2/yv_gt_480p}
        SUFFIX=480p
        FRAMES=$YV_ROOT/train_480p/JPEGImages
        DATA_ARGS=(--yv_path "$YV_ROOT" --res -1 --mem_every 1) ;;  # train_480p: every 5th frame
    davis)
        D17=$DAVIS_ROOT/2017
        if [ ! -d "$D17" ] && [ -d "$DAVIS_ROOT/trainval" ]; then D17=$DAVIS_ROOT; fi
        SPARSE=${DAVIS_SPARSE:-$D17/phase2/davis_gt}
        SUFFIX=davis
        FRAMES=$D17/trainval/JPEGImages/480p
        DATA_ARGS=(--davis --davis_path "$DAVIS_ROOT" --mem_every 5) ;;
    *) echo "unknown dataset '$DATASET' (youtube or davis)" >&2; exit 2 ;;
esac

# Run an inference command once per GPU of GPU_LIST (with --shard j/N when N > 1); fail if
# any process fails; an interrupt stops them all (background jobs ignore SIGINT otherwise).
run_on_gpus() {
    local n=${#GPU_LIST[@]} j rc=0 pids=()
    if [ "$n" -le 1 ]; then
        CUDA_VISIBLE_DEVICES=${GPU_LIST[0]:-0} "$@"
        return
    fi
    trap 'kill -TERM "${pids[@]}" 2>/dev/null' INT TERM
    for j in "${!GPU_LIST[@]}"; do
        CUDA_VISIBLE_DEVICES=${GPU_LIST[$j]} "$@" --shard "$j/$n" &
        pids+=($!)
    done
    for j in "${!pids[@]}"; do
        wait "${pids[$j]}" || { rc=$?; echo "shard $j/$n (GPU ${GPU_LIST[$j]}) failed" >&2; }
    done
    trap - INT TERM
    return $rc
}

pass_flags() {
    case "$1" in
        left) ;;
        leftsecgt) echo --only_sec_gt ;;
        right) echo --reverse ;;
        rightsecgt) echo --reverse --only_sec_gt ;;
    esac
}

for step in "${STEPS[@]}"; do             # every step known before the first one runs
    case "$step" in left|leftsecgt|right|rightsecgt|bank|merge) ;;
        *) echo "unknown step '$step' (left, leftsecgt, right, rightsecgt, merge or bank)" >&2
           exit 2 ;; esac
    [ "$step" = merge ] || [ -n "$MODEL" ] || {
        echo "no phase-1 model found: set MODEL=path/to/phase1.pth" >&2; exit 2; }
done

for step in "${STEPS[@]}"; do
    if [ "$step" = merge ]; then
        cmd=("$PYTHON" phase2_scripts/merge_left_right.py --gt_dir "$SPARSE"
             --left "$OUT_ROOT/phase1_left_$SUFFIX" --leftsecgt "$OUT_ROOT/phase1_leftsecgt_$SUFFIX"
             --right "$OUT_ROOT/phase1_right_$SUFFIX" --rightsecgt "$OUT_ROOT/phase1_rightsecgt_$SUFFIX"
             --out "$OUT_ROOT/phase1_merge_$SUFFIX" --frames_dir "$FRAMES")
    else
        if [ "$step" = bank ]; then
            script=eval_youtube_bank.py
            target=(--output "$OUT_ROOT/phase1_merge_$SUFFIX")
        else
            script=eval_youtube_phase2.py
            target=(--output_all $(pass_flags "$step") --output "$OUT_ROOT/phase1_${step}_$SUFFIX")
        fi
        cmd=("$PYTHON" "$script" --model "$MODEL" "${DATA_ARGS[@]}" --data_file "$SPARSE"
             "${target[@]}" ${EVAL_ARGS:-})
    fi
    echo "+ ${cmd[*]}"
    if [ "$step" = merge ]; then "${cmd[@]}"; else run_on_gpus "${cmd[@]}"; fi
done
