#!/usr/bin/env bash
# Make sure `promtool` is on PATH without installing a Prometheus server: the binary alone is taken out of
# Debian's prometheus package (apt-get download + dpkg-deb -x; apt checks the package against the signed
# archive index) and installed as $PROMTOOL_DIR/promtool (default /usr/local/bin). No service, no user,
# no unit file, no web assets. Used by CI before tests/integration/test_deploy_*.py and by people checking
# deploy/prometheus by hand.
set -euo pipefail

PROMTOOL_DIR=${PROMTOOL_DIR:-/usr/local/bin}
log() { printf 'ensure_promtool.sh: %s\n' "$*" >&2; }

if command -v promtool > /dev/null; then
    promtool --version 2>&1 | head -1
    exit 0
fi
command -v apt-get > /dev/null && command -v dpkg-deb > /dev/null || {
    log "promtool is missing and there is no apt-get/dpkg-deb: put Prometheus' promtool binary on PATH by hand"
    exit 2
}
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
chmod 777 "$work"  # apt-get download writes as the _apt user
# The package lists may be missing on a fresh image; `apt-get download` needs them, not a full install.
$SUDO apt-get update -q > /dev/null
(cd "$work" && apt-get download -q prometheus > /dev/null)
dpkg-deb -x "$work"/prometheus_*.deb "$work/root"
[ -x "$work/root/usr/bin/promtool" ] || { log "the prometheus package has no usr/bin/promtool"; exit 2; }
$SUDO install -D -m 0755 "$work/root/usr/bin/promtool" "$PROMTOOL_DIR/promtool"
log "installed $PROMTOOL_DIR/promtool (binary only, from the Debian prometheus package)"
"$PROMTOOL_DIR/promtool" --version 2>&1 | head -1
