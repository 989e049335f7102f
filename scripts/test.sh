#!/usr/bin/env bash
# Run the test suite (CPU only). Extra arguments go to pytest, e.g. `bash scripts/test.sh -k merge`.
set -e
source "$(dirname "${BASH_SOURCE[0]}")/venv.sh"
python -m pytest -q "$@"
