#!/usr/bin/env bash
# Install everything the tests need (venv, Mosquitto, PostgreSQL, Chromium, promtool) and run them.
# Extra arguments go to pytest (e.g. scripts/test.sh -k outbox, or -m slow for the long ones).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup_venv.sh cpu,dev,tflite,cloud,bench,openvino,fleet
scripts/ensure_mosquitto.sh
scripts/ensure_chromium.sh
scripts/ensure_promtool.sh
export ROI_TEST_PG_URL="${ROI_TEST_PG_URL:-$(scripts/ensure_postgres.sh)}"
.venv/bin/ruff check .
.venv/bin/mypy edge_agent roi_service
set +e
.venv/bin/python -m pytest -m "not slow" "$@"
code=$?
set -e
if [ "$code" -eq 5 ]; then echo "test: no tests were collected" >&2; exit 1; fi
exit "$code"
