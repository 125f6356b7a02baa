#!/usr/bin/env bash
# Make sure `promtool` (Debian package prometheus) is on PATH; apt-get installs it when missing.
# Used by CI before tests/integration/test_deploy_*.py and by people checking deploy/prometheus by hand.
set -euo pipefail

if command -v promtool > /dev/null; then
    promtool --version 2>&1 | head -1
    exit 0
fi
if ! command -v apt-get > /dev/null; then
    echo "ensure_promtool.sh: promtool is missing and there is no apt-get: install Prometheus' promtool by hand" >&2
    exit 2
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends prometheus
command -v promtool > /dev/null || { echo "ensure_promtool.sh: prometheus installed but promtool not on PATH" >&2; exit 2; }
promtool --version 2>&1 | head -1
