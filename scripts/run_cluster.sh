#!/usr/bin/env bash
# `make run-cluster N=3`: N Rasa servers behind nginx over PostgreSQL (tracker store) and Redis (locks).
#   run_cluster.sh [N]         install nginx / redis-server / postgresql from Debian if missing, then run
#                              bot/devtools/cluster.py in the foreground (Ctrl-C stops everything)
#   run_cluster.sh --deps-only only the Debian packages (called by scripts/setup_test_deps.sh)
# Clients connect to nginx on RASA_PORT (default 5005), as with `make run`. TRACKER_DB_URL (PostgreSQL) and
# REDIS_URL are used when set; otherwise a private PostgreSQL and Redis are started in $VAR_DIR/cluster/.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=$PWD RASA_TELEMETRY_ENABLED=false TF_CPP_MIN_LOG_LEVEL=3 SQLALCHEMY_SILENCE_UBER_WARNING=1 \
  PYTHONWARNINGS=ignore
umask 077

install_deps() {
  local missing=()
  command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
  command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
  ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || missing+=(postgresql)
  [ ${#missing[@]} = 0 ] && return 0
  if [ "$(id -u)" != 0 ]; then
    echo "run-cluster needs Debian packages: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  echo "setup: installing Debian ${missing[*]} for the cluster"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  # Debian starts the packages' system services on install; the cluster runs its own processes instead.
  if command -v service >/dev/null 2>&1; then
    for pkg in "${missing[@]}"; do
      case $pkg in nginx) service nginx stop >/dev/null 2>&1 || true ;; esac
    done
  fi
}

if [ "${1:-}" = "--deps-only" ]; then
  install_deps
  exit 0
fi
install_deps
exec .venv/bin/python -m bot.devtools.cluster --servers "${1:-3}"
