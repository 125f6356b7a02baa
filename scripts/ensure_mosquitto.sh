#!/usr/bin/env bash
# Install Mosquitto and its clients (Debian packages) when missing. Tests start their own brokers on free
# loopback ports, so nothing is started here.
set -euo pipefail
if command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ]; then
  if command -v mosquitto_sub >/dev/null 2>&1 && command -v mosquitto_passwd >/dev/null 2>&1; then exit 0; fi
fi
echo "ensure_mosquitto: installing mosquitto and mosquitto-clients (apt-get)" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq mosquitto mosquitto-clients openssl >/dev/null
