#!/usr/bin/env bash
# Intermediate inference, pass 'leftsecgt' on youtube (see run_intermediate.sh for the variables).
exec bash "$(dirname "$0")/../run_intermediate.sh" youtube leftsecgt "$@"
