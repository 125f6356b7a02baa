#!/usr/bin/env bash
# Container entrypoint: turn fleet variables into files and overrides, seed the config on first start,
# then exec `edge-agent`. `run` (the default) runs the agent; any other arguments go to edge-agent as-is
# (docker run IMAGE models verify, ... check /config/agent.yaml, ... bench).
set -euo pipefail

CONFIG=${EDGE_AGENT_CONFIG:-/data/config/agent.yaml}
PROFILES=${EDGE_AGENT_PROFILES:-/opt/edge-agent/profiles}
TLS_DIR=${EDGE_AGENT_TLS_DIR:-/data/tls}

log() { printf 'entrypoint: %s\n' "$*" >&2; }

# balena device variables cannot be files: a PEM given in MQTT_CA_PEM / MQTT_CERT_PEM / MQTT_KEY_PEM
# (plain or base64) is written under $TLS_DIR and the matching EDGE_AGENT__MQTT__TLS__* override is set.
write_pem() {
    local var=$1 file=$2 field=$3 value
    value=${!var:-}
    [ -n "$value" ] || return 0
    mkdir -p "$TLS_DIR"
    if [[ "$value" == *"-----BEGIN"* ]]; then
        printf '%s\n' "$value" > "$TLS_DIR/$file"
    else
        printf '%s' "$value" | base64 -d > "$TLS_DIR/$file"
    fi
    chmod 600 "$TLS_DIR/$file"
    export "EDGE_AGENT__MQTT__TLS__${field}=$TLS_DIR/$file"
}

# /metrics stays on loopback (the profiles' http.host) unless the fleet opens it: EDGE_AGENT__HTTP__HOST set
# to a network address needs a bearer token, given as METRICS_TOKEN (written to $TLS_DIR/metrics_token) or as
# EDGE_AGENT__HTTP__TOKEN_FILE. Prometheus sends the same token (deploy/prometheus/prometheus.yml).
metrics_access() {
    if [ -n "${METRICS_TOKEN:-}" ]; then
        mkdir -p "$TLS_DIR"
        (umask 077 && printf '%s\n' "$METRICS_TOKEN" > "$TLS_DIR/metrics_token")
        export EDGE_AGENT__HTTP__TOKEN_FILE="$TLS_DIR/metrics_token"
    fi
    case "${EDGE_AGENT__HTTP__HOST:-127.0.0.1}" in
        127.*|localhost|::1) return 0 ;;
    esac
    if [ -z "${EDGE_AGENT__HTTP__TOKEN_FILE:-}" ]; then
        log "EDGE_AGENT__HTTP__HOST=$EDGE_AGENT__HTTP__HOST would let anyone on the network read /metrics:"
        log "  set METRICS_TOKEN (the token Prometheus sends), or leave EDGE_AGENT__HTTP__HOST unset (loopback)"
        exit 2
    fi
}

fleet_defaults() {
    write_pem MQTT_CA_PEM ca.crt CA_FILE
    write_pem MQTT_CERT_PEM client.crt CERT_FILE
    write_pem MQTT_KEY_PEM client.key KEY_FILE
    # On balena every device has a name; it is the device id unless the fleet sets one.
    if [ -z "${EDGE_AGENT__DEVICE__ID:-}" ] && [ -n "${BALENA_DEVICE_NAME_AT_INIT:-}" ]; then
        export EDGE_AGENT__DEVICE__ID="${BALENA_DEVICE_NAME_AT_INIT//[^A-Za-z0-9_-]/-}"
    fi
}

seed_config() {
    [ -f "$CONFIG" ] && return 0
    local profile=${EDGE_AGENT_PROFILE:-}
    if [ -z "$profile" ] || [ ! -f "$PROFILES/$profile.yaml" ]; then
        log "no config at $CONFIG: mount one, or set EDGE_AGENT_PROFILE to one of:"
        for f in "$PROFILES"/*.yaml; do log "  $(basename "$f" .yaml)"; done
        exit 2
    fi
    mkdir -p "$(dirname "$CONFIG")"
    cp "$PROFILES/$profile.yaml" "$CONFIG"
    log "seeded $CONFIG from profile $profile (edit it, or draw zones with edge-agent zones)"
}

main() {
    fleet_defaults
    metrics_access
    if [ "${1:-run}" != run ]; then
        exec edge-agent "$@"
    fi
    seed_config
    # Raspberry Pi CSI cameras: libcamerify (from libcamera-v4l2, when the image has it) shows a libcamera
    # camera to OpenCV as a V4L2 device, so the `camera` source with device: 0 reads it.
    if [ "${EDGE_AGENT_LIBCAMERIFY:-0}" = 1 ] && command -v libcamerify > /dev/null; then
        exec libcamerify edge-agent run "$CONFIG"
    fi
    exec edge-agent run "$CONFIG"
}

main "$@"
