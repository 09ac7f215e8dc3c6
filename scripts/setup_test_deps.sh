#!/usr/bin/env bash
# Test-only dependencies: Debian's Chromium + ChromeDriver for the browser tests, and the widget's npm packages.
# (PostgreSQL for the review tests is found or started by scripts/ensure_postgres.sh when the tests run.)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "setup: installing Debian chromium + chromium-driver for the browser tests"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
  else
    echo "ERROR: browser tests need Debian's chromium: sudo apt-get install chromium chromium-driver" >&2
    exit 1
  fi
fi
# RabbitMQ for the escalation-alert tests and bench (tests/alerts/, scripts/bench_alerts.py): they start a node of
# their own on a free port, so the system service Debian starts on install is stopped again.
if [ ! -x /usr/lib/rabbitmq/bin/rabbitmq-server ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "setup: installing Debian rabbitmq-server for the alert tests"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rabbitmq-server >/dev/null
    if command -v service >/dev/null 2>&1; then service rabbitmq-server stop >/dev/null 2>&1 || true; fi
  else
    echo "note: without rabbitmq-server the alert tests check the events-table path only (sudo apt-get install rabbitmq-server)" >&2
  fi
fi
bash scripts/setup_web_deps.sh
bash scripts/run_cluster.sh --deps-only  # nginx, redis-server, postgresql for the cluster tests (tests/cluster/)
