#!/usr/bin/env bash
# Container entrypoint: turn fleet variables into files and overrides, seed the config on first start,
# then exec `edge-agent`. `run` (the default) runs the agent; any other arguments go to edge-agent as-is
# (docker run IMAGE models verify, ... check /config/agent.yaml, ... bench).
set -euo pipefail

CONFIG=${EDGE_AGENT_CONFIG:-/config/agent.yaml}
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
