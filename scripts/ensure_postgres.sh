#!/usr/bin/env bash
# Prints the SQLAlchemy URL of a reachable PostgreSQL for the review tests (only the URL on stdout).
#  1. A server on 127.0.0.1:5432 that lets user postgres or root into database `test` (PGPASSWORD honoured).
#  2. Otherwise a private cluster on 127.0.0.1:55432 (trust auth, owned by the `postgres` system user) in
#     $REVIEW_PG_DIR (default /var/tmp/clinic-review-pg), created with initdb and started with pg_ctl;
#     Debian's `postgresql` package is installed first when missing (needs root).
# REVIEW_PG_SKIP_DEFAULT=1 skips step 1 (to test step 2).
# Exits non-zero (and prints nothing on stdout) when no PostgreSQL can be had; tests then skip PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
PRIVATE_PORT=${REVIEW_PG_PORT:-55432}
PGDIR=${REVIEW_PG_DIR:-/var/tmp/clinic-review-pg}
log() { echo "ensure_postgres: $*" >&2; }

# try_connect HOST PORT: prints a URL when user postgres or root can use database `test` (created if missing)
try_connect() {
  "$PY" - "$1" "$2" <<'PY'
import sys
import psycopg2
from psycopg2 import sql

host, port = sys.argv[1], int(sys.argv[2])
for user in ("postgres", "root"):
    try:
        psycopg2.connect(host=host, port=port, user=user, dbname="test", connect_timeout=3).close()
    except psycopg2.OperationalError as error:
        if 'database "test" does not exist' not in str(error):
            continue
        try:
            admin = psycopg2.connect(host=host, port=port, user=user, dbname="postgres", connect_timeout=3)
            admin.autocommit = True
            admin.cursor().execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier("test")))
            admin.close()
        except psycopg2.Error:
            continue
    print(f"postgresql://{user}@{host}:{port}/test")
    sys.exit(0)
sys.exit(1)
PY
}

pg_bin() {  # newest Debian PostgreSQL bin dir
  ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

if [ "${REVIEW_PG_SKIP_DEFAULT:-0}" = 1 ]; then
  log "REVIEW_PG_SKIP_DEFAULT=1: not trying 127.0.0.1:5432"
elif command -v pg_isready >/dev/null 2>&1 && pg_isready -q -h 127.0.0.1 -p 5432 -t 3; then
  if try_connect 127.0.0.1 5432; then exit 0; fi
  log "127.0.0.1:5432 answers but neither postgres nor root can use database test; starting a private cluster"
elif "$PY" -c 'import socket,sys; s=socket.socket(); s.settimeout(2); sys.exit(s.connect_ex(("127.0.0.1",5432)))' 2>/dev/null; then
  if try_connect 127.0.0.1 5432; then exit 0; fi
fi

# A private cluster already running from an earlier call?
if try_connect 127.0.0.1 "$PRIVATE_PORT" 2>/dev/null; then exit 0; fi

BIN=$(pg_bin)
if [ -z "$BIN" ] || [ ! -x "$BIN/initdb" ]; then
  if [ "$(id -u)" != 0 ]; then
    log "PostgreSQL is not installed and this is not root: sudo apt-get install postgresql"
    exit 1
  fi
  log "installing Debian postgresql"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null) >&2
  BIN=$(pg_bin)
fi
if [ -z "$BIN" ] || [ ! -x "$BIN/initdb" ]; then
  log "no initdb found after installing postgresql"
  exit 1
fi

as_postgres() {
  if [ "$(id -un)" = postgres ]; then "$@"
  elif command -v runuser >/dev/null 2>&1; then runuser -u postgres -- "$@"
  else su postgres -s /bin/sh -c "$(printf '%q ' "$@")"
  fi
}
if [ "$(id -u)" != 0 ] && [ "$(id -un)" != postgres ]; then
  log "starting a private cluster needs root (to run it as the postgres user)"
  exit 1
fi
id postgres >/dev/null 2>&1 || { log "no postgres system user"; exit 1; }

mkdir -p "$PGDIR"
chown postgres "$PGDIR"
chmod 700 "$PGDIR"
if [ ! -s "$PGDIR/data/PG_VERSION" ]; then
  log "initdb in $PGDIR/data"
  as_postgres "$BIN/initdb" -D "$PGDIR/data" -U postgres -A trust -E UTF8 --no-sync >/dev/null
fi
if ! as_postgres "$BIN/pg_ctl" -D "$PGDIR/data" status >/dev/null 2>&1; then
  log "starting PostgreSQL on 127.0.0.1:$PRIVATE_PORT"
  as_postgres "$BIN/pg_ctl" -D "$PGDIR/data" -l "$PGDIR/server.log" -w -t 60 \
    -o "-p $PRIVATE_PORT -c listen_addresses=127.0.0.1 -k $PGDIR -c fsync=off -c full_page_writes=off" start >/dev/null
fi
if try_connect 127.0.0.1 "$PRIVATE_PORT"; then exit 0; fi
log "the private cluster did not accept connections; see $PGDIR/server.log"
exit 1
