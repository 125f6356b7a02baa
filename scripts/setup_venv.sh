#!/usr/bin/env bash
# Create .venv (Python >= 3.10) and install the project with the given extras, e.g. scripts/setup_venv.sh cpu,dev,tflite
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS="${1:-cpu,tflite}"
PY="${PYTHON:-python3}"
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
  echo "setup: Python >= 3.10 is needed (found $("$PY" --version 2>&1)); set PYTHON=/path/to/python3.x" >&2
  exit 2
fi
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv || { echo "setup: python3 -m venv failed: apt-get install python3-venv" >&2; exit 2; }
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e ".[${EXTRAS}]"
