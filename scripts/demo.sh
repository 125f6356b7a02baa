#!/usr/bin/env bash
# Install the agent and the service, then run the demo: bundled models on sample inputs, an embedded broker,
# roi_service beside the agent. Extra arguments go to `edge-agent demo` (e.g. --seconds 30).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup_venv.sh cpu,tflite,cloud
exec .venv/bin/edge-agent demo "$@"
