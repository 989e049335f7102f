#!/usr/bin/env bash
# Intermediate inference, pass 'right' on davis (see run_intermediate.sh for the variables).
exec bash "$(dirname "$0")/../run_intermediate.sh" davis right "$@"
