#!/usr/bin/env bash
# Install Debian's headless-capable Chromium for the dashboard browser test when /usr/bin/chromium is missing.
# --no-install-recommends: the test runs `chromium --headless`, which needs none of the desktop extras
# (fonts beyond the default, UPower, notification daemons) that the recommended packages bring.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "ensure_chromium: installing chromium (apt-get, no recommended packages)" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium
/usr/bin/chromium --version
