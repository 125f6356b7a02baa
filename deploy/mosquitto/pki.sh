#!/usr/bin/env bash
# Site PKI and broker credentials with openssl and mosquitto_passwd: a CA, the broker's server
# certificate, service users and one identity per device (client certificate, password, ACL block).
#
#   deploy/mosquitto/pki.sh init   SITE_DIR                     CA, empty passwd, acl, service secrets
#   deploy/mosquitto/pki.sh server SITE_DIR HOST [SAN ...]      server cert for HOST (SAN: DNS:x or IP:y)
#   deploy/mosquitto/pki.sh user   SITE_DIR NAME                password for roi-service / operator
#   deploy/mosquitto/pki.sh device SITE_DIR SITE DEVICE         device bundle in SITE_DIR/devices/SITE.DEVICE/
#
# SITE_DIR holds secrets: keep it off git and back it up. Layout:
#   ca/        the CA key (never leaves this folder)    broker/   mounted by Mosquitto at /mosquitto/config/site
#   users/     service passwords                        devices/  one bundle per device
#   secrets/   roi_api_token, grafana_admin_password, metrics_token (docker compose secrets; metrics_token
#              is also each device's METRICS_TOKEN, the bearer token Prometheus scrapes /metrics with)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DAYS_CA=${PKI_DAYS_CA:-3650}
DAYS_CERT=${PKI_DAYS_CERT:-825}
SEGMENT='^[A-Za-z0-9_-]{1,64}$'

die() { printf 'pki.sh: %s\n' "$*" >&2; exit 2; }
need() { command -v "$1" > /dev/null || die "$1 not found: $2"; }
new_password() { openssl rand -base64 24 | tr -d '/+=' | cut -c1-24; }

init() {
    local dir=$1
    need openssl "apt-get install openssl"
    [ ! -e "$dir/ca/ca.key" ] || die "$dir/ca/ca.key exists: refusing to replace the site CA (every device trusts it)"
    mkdir -p "$dir/ca" "$dir/broker" "$dir/secrets"
    chmod 700 "$dir"  # containers mount broker/ and single files; other host users see nothing
    chmod 700 "$dir/ca" "$dir/secrets"
    (umask 077 && openssl genrsa -out "$dir/ca/ca.key" 3072 2> /dev/null)
    openssl req -x509 -new -key "$dir/ca/ca.key" -sha256 -days "$DAYS_CA" -subj "/CN=edge-agent site CA" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -out "$dir/ca/ca.crt"
    cp "$dir/ca/ca.crt" "$dir/broker/ca.crt"
    cp "$HERE/acl" "$dir/broker/acl"
    : > "$dir/broker/passwd"
    # Readable by the containers' users (Mosquitto reads passwd and acl after dropping root); the
    # folders above them are what keeps other host users out.
    new_password > "$dir/secrets/roi_api_token"
    new_password > "$dir/secrets/grafana_admin_password"
    new_password > "$dir/secrets/metrics_token"
    chmod 644 "$dir/broker/ca.crt" "$dir/broker/acl" "$dir/broker/passwd" "$dir/secrets/"*
    echo "site CA: $dir/ca/ca.crt; broker files: $dir/broker; service secrets: $dir/secrets"
}

sign() {  # sign KEY_OUT CERT_OUT CN EXTENSIONS
    local dir=$1 key=$2 cert=$3 cn=$4 ext=$5 csr
    csr=$(mktemp)
    (umask 077 && openssl genrsa -out "$key" 2048 2> /dev/null)
    openssl req -new -key "$key" -subj "/CN=$cn" -out "$csr"
    openssl x509 -req -in "$csr" -CA "$dir/ca/ca.crt" -CAkey "$dir/ca/ca.key" -CAcreateserial -days "$DAYS_CERT" \
        -sha256 -extfile <(printf '%s\n' "$ext") -out "$cert" 2> /dev/null
    rm -f "$csr"
}

server() {
    local dir=$1 host=$2 sans="DNS:$2"
    shift 2
    for san in "$@"; do sans="$sans,$san"; done
    [ -f "$dir/ca/ca.key" ] || die "$dir has no CA: run pki.sh init $dir first"
    sign "$dir" "$dir/broker/server.key" "$dir/broker/server.crt" "$host" \
        "$(printf 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=%s' "$sans")"
    chmod 644 "$dir/broker/server.key"  # the broker/ folder is the boundary; Mosquitto runs as uid 1883
    echo "server certificate: $dir/broker/server.crt ($sans)"
}

add_password() {  # add_password DIR USER PASSWORD
    need mosquitto_passwd "apt-get install mosquitto (or run this script in the eclipse-mosquitto image)"
    local file=$1/broker/passwd
    if [ -s "$file" ]; then mosquitto_passwd -b "$file" "$2" "$3"; else mosquitto_passwd -c -b "$file" "$2" "$3"; fi
    chmod 644 "$file"
}

user() {
    local dir=$1 name=$2 password
    password=$(new_password)
    add_password "$dir" "$name" "$password"
    mkdir -p "$dir/users/$name"
    # 644 inside a 700 SITE_DIR: compose bind-mounts it as a secret for a non-root service user.
    printf "%s" "$password" > "$dir/users/$name/mqtt_password"
    chmod 644 "$dir/users/$name/mqtt_password"
    echo "user $name: password in $dir/users/$name/mqtt_password"
}

device() {
    local dir=$1 site=$2 dev=$3 name out password node
    [[ $site =~ $SEGMENT && $dev =~ $SEGMENT ]] || die "site and device must be 1-64 characters of A-Z a-z 0-9 _ -"
    [ -f "$dir/ca/ca.key" ] || die "$dir has no CA: run pki.sh init $dir first"
    name="$site.$dev"
    out="$dir/devices/$name"
    mkdir -p "$out"
    sign "$dir" "$out/client.key" "$out/client.crt" "$name" \
        "$(printf 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth')"
    cp "$dir/ca/ca.crt" "$out/ca.crt"
    password=$(new_password)
    add_password "$dir" "$name" "$password"
    (umask 077 && printf '%s' "$password" > "$out/mqtt_password")
    node="edge_${site}_${dev}"
    if ! grep -qx "user $name" "$dir/broker/acl"; then
        printf '\nuser %s\ntopic write edge/v1/%s/%s/#\ntopic read edge/v1/%s/%s/cmd/#\ntopic write homeassistant/+/%s/#\n' \
            "$name" "$site" "$dev" "$site" "$dev" "${node//-/_}" >> "$dir/broker/acl"
    fi
    cat > "$out/device.env" <<ENV
EDGE_AGENT__DEVICE__SITE=$site
EDGE_AGENT__DEVICE__ID=$dev
EDGE_AGENT__MQTT__USERNAME=$name
EDGE_AGENT__MQTT__PASSWORD_FILE=/data/tls/mqtt_password
EDGE_AGENT__MQTT__TLS__CA_FILE=/data/tls/ca.crt
ENV
    echo "device $name: bundle in $out (ca.crt, client.crt, client.key, mqtt_password, device.env)"
    echo "reload the broker to pick up the new password and ACL (docker compose kill -s HUP broker)"
}

main() {
    local cmd=${1:-}
    shift || true
    case "$cmd" in
        init) [ $# -eq 1 ] || die "usage: pki.sh init SITE_DIR"; init "$@" ;;
        server) [ $# -ge 2 ] || die "usage: pki.sh server SITE_DIR HOST [SAN ...]"; server "$@" ;;
        user) [ $# -eq 2 ] || die "usage: pki.sh user SITE_DIR NAME"; user "$@" ;;
        device) [ $# -eq 3 ] || die "usage: pki.sh device SITE_DIR SITE DEVICE"; device "$@" ;;
        *) sed -n '2,10p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; [ -z "$cmd" ] || exit 2 ;;
    esac
}

main "$@"
