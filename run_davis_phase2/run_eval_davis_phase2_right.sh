#!/usr/bin/env bash
# Intermediate inference, pass 'right' on davis: the original's command line
#   python eval_youtube_phase2.py --model $MODEL --output $OUT_ROOT/phase1_right_davis \
#       --mem_every 5 --output_all --reverse --davis
# run by run_intermediate.sh with the roots spelled out
# (variables MODEL OUT_ROOT DAVIS_ROOT DAVIS_SPARSE GPUS PYTHON EVAL_ARGS: see there).
exec bash "$(dirname "$0")/../run_intermediate.sh" davis right "$@"
