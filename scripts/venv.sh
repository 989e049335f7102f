# Sourced by demo.sh / test.sh: create .venv if missing and install requirements.txt into it,
# skipping the install when requirements.txt has not changed since the last successful install.
set -e
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
PY_BOOT="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
    echo "[venv] creating $VENV"
    "$PY_BOOT" -m venv "$VENV"
fi
STAMP="$VENV/.requirements.sha256"
WANT="$(sha256sum "$ROOT/requirements.txt" | cut -d' ' -f1)"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
    echo "[venv] installing requirements.txt"
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q -r "$ROOT/requirements.txt"
    echo "$WANT" > "$STAMP"
fi
export PATH="$VENV/bin:$PATH"
cd "$ROOT"
