#!/usr/bin/env bash
# Intermediate inference, pass 'rightsecgt' on youtube: the original's command line
#   python eval_youtube_phase2.py --model $MODEL --output $OUT_ROOT/phase1_rightsecgt_480p \
#       --output_all --res -1 --reverse --only_sec_gt
# run by run_intermediate.sh with the roots spelled out
# (variables MODEL OUT_ROOT YV_ROOT YV_SPARSE GPUS PYTHON EVAL_ARGS: see there).
exec bash "$(dirname "$0")/../run_intermediate.sh" youtube rightsecgt "$@"
