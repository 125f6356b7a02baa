#!/usr/bin/env bash
# Make a local PostgreSQL available for roi_service's integration tests and print its test URL.
# Installs the Debian package when missing, starts a cluster on 127.0.0.1:5432 and creates the test database.
# Usage: scripts/ensure_postgres.sh [dbname]   (default roi_test); export ROI_TEST_PG_URL=$(scripts/ensure_postgres.sh)
set -euo pipefail

DB="${1:-roi_test}"
HOST=127.0.0.1
PORT=5432
log() { echo "ensure_postgres: $*" >&2; }

as_postgres() {
  if [ "$(id -un)" = postgres ]; then "$@"; elif command -v runuser >/dev/null; then runuser -u postgres -- "$@"; else su postgres -c "$*"; fi
}

ready() { pg_isready -q -h "$HOST" -p "$PORT" 2>/dev/null; }

install_server() {
  if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
    log "installing postgresql (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq postgresql >&2
  fi
}

start_server() {
  local version
  version="$(ls /usr/lib/postgresql | sort -V | tail -1)"
  if command -v pg_lsclusters >/dev/null && ! pg_lsclusters -h | grep -q "^$version "; then
    pg_createcluster "$version" main >&2
  fi
  log "starting PostgreSQL $version"
  pg_ctlcluster "$version" main start >&2 || service postgresql start >&2
  for _ in $(seq 1 50); do ready && return 0; sleep 0.2; done
  log "PostgreSQL did not come up on $HOST:$PORT"; exit 1
}

ready || { install_server; start_server; }

# The tests connect as user postgres over TCP; a fresh Debian cluster asks for a password there.
if ! psql -h "$HOST" -p "$PORT" -U postgres -d postgres -Atc "select 1" >/dev/null 2>&1; then
  log "allowing local trust auth for user postgres on $HOST (test machine only)"
  hba="$(as_postgres psql -Atc 'show hba_file')"
  sed -i "1i host all postgres $HOST/32 trust" "$hba"
  as_postgres psql -qc "select pg_reload_conf()" >/dev/null
fi

if [ "$(psql -h "$HOST" -p "$PORT" -U postgres -d postgres -Atc "select 1 from pg_database where datname='$DB'")" != 1 ]; then
  log "creating database $DB"
  psql -h "$HOST" -p "$PORT" -U postgres -d postgres -qc "create database \"$DB\"" >&2
fi
echo "postgresql+psycopg://postgres@$HOST:$PORT/$DB"
