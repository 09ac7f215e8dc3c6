#!/usr/bin/env bash
# The bot's processes: one command line each, and the supervisor that keeps them running.
#
#   run.sh             start everything under supervisord (deploy/supervisord.conf): the action server,
#                      the Rasa server (REST + socket.io + SMS), the website demo, the staff review app and
#                      the escalation alert worker (bot/alerts) and the outreach worker (bot/outreach).
#                      A part that crashes is restarted, and that is logged in $VAR_DIR/supervisord.log;
#                      the other parts keep serving. Ctrl-C stops everything.
#   run.sh shell       chat in this terminal with the running bot (Rasa's console over the REST channel,
#                      with the token; bot/console.py): start `run.sh` first, in another terminal
#   run.sh part NAME   run one part in the foreground (actions | rasa | web | review | alerts | outreach): what supervisord
#                      and the systemd units in deploy/systemd/ start
#   run.sh ctl ARGS    supervisorctl of the running `run.sh` (status, pid actions, restart rasa, tail rasa ...)
#
# Settings come from the environment and are read by bot/config.py (see its table and the README):
# RASA_PORT, ACTION_PORT, ACTION_SERVER_HOST, WEB_PORT, REVIEW_PORT, VAR_DIR, TRACKER_DB_URL, RASA_AUTH_TOKEN...
# so tests run this same script on free ports with a temporary VAR_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=$ROOT/.venv/bin/python
RASA=$ROOT/.venv/bin/rasa
MODEL=$ROOT/models/clinic.tar.gz
export PYTHONPATH=$ROOT RASA_TELEMETRY_ENABLED=false TF_CPP_MIN_LOG_LEVEL=3 SQLALCHEMY_SILENCE_UBER_WARNING=1 \
  PYTHONWARNINGS=ignore
umask 077  # databases, logs and secrets made by any part are readable by this user only

# Every setting, as bot/config.py reads it (a bad value stops here, with its message).
settings=$("$PY" - <<'EOF'
import shlex

from bot import config

rasa_port = config.rasa_port()
server_url = config.rasa_server_url()
if server_url == config.DEFAULT_RASA_SERVER_URL:  # unset: the web demo talks to this Rasa port
    server_url = f"http://localhost:{rasa_port}"
values = {
    "VAR_DIR": config.var_dir().resolve(),
    "RASA_PORT": rasa_port,
    "ACTION_PORT": config.action_server_port(),
    "ACTION_SERVER_HOST": config.action_server_host(),
    "ACTION_SERVER_URL": config.action_server_url(),
    "WEB_PORT": config.web_port(),
    "REVIEW_PORT": config.review_port(),
    "RASA_SERVER_URL": server_url,
    "CONFIGURED_AUTH_TOKEN": config.rasa_auth_token() or "",
    "ALERTS_NOTE": ", ".join(filter(None, [
        "e-mail" if config.alert_smtp_url() else "no e-mail (set ALERT_SMTP_URL)",
        "SMS to the on-call phone" if config.twilio_account_sid() and config.twilio_from_number() else "",
        "via RabbitMQ" if config.rabbitmq_url() else "from the events table",
    ])),
}
for name, value in values.items():
    print(f"{name}={shlex.quote(str(value))}")
EOF
)
eval "$settings"
export VAR_DIR RASA_PORT ACTION_PORT ACTION_SERVER_HOST WEB_PORT REVIEW_PORT RASA_SERVER_URL
mkdir -p "$VAR_DIR"
SUPERVISOR_CONF=$ROOT/deploy/supervisord.conf

# The HTTP API is only ever enabled with a token: RASA_AUTH_TOKEN, else one generated once (0600).
load_token() {
  if [ -n "$CONFIGURED_AUTH_TOKEN" ]; then
    RASA_AUTH_TOKEN=$CONFIGURED_AUTH_TOKEN
    token_note="from RASA_AUTH_TOKEN"
  else
    if [ ! -s "$VAR_DIR/rasa_auth_token" ]; then
      # written aside, then linked into place (atomic, fails if it exists): parts that systemd starts at the
      # same moment all end up with the one token the first of them made
      local fresh
      fresh=$(mktemp "$VAR_DIR/.rasa_auth_token.XXXXXX")
      chmod 600 "$fresh"
      "$PY" -c 'import secrets; print(secrets.token_urlsafe(32))' > "$fresh"
      ln "$fresh" "$VAR_DIR/rasa_auth_token" 2>/dev/null || true
      rm -f "$fresh"
    fi
    RASA_AUTH_TOKEN=$(cat "$VAR_DIR/rasa_auth_token")
    token_note="generated, saved in $VAR_DIR/rasa_auth_token"
  fi
  export RASA_AUTH_TOKEN  # the REST channel checks it too
}

# endpoints.yml with the action server's address from the settings.
write_endpoints() {
  "$PY" - "$ROOT/endpoints.yml" "$VAR_DIR/endpoints.yml" "$ACTION_SERVER_URL" <<'EOF'
import os
import sys

import yaml

source, target, url = sys.argv[1:]
endpoints = yaml.safe_load(open(source))
endpoints["action_endpoint"]["url"] = url
with open(target + ".tmp", "w") as handle:
    handle.write(f"# Written by scripts/run.sh from {source}; edit that file instead.\n")
    yaml.safe_dump(endpoints, handle, sort_keys=False)
os.replace(target + ".tmp", target)
EOF
}

part() {
  case "${1:-}" in
    actions)
      # rasa_sdk reads its bind address from SANIC_HOST (its own default is 0.0.0.0)
      SANIC_HOST=$ACTION_SERVER_HOST exec "$RASA" run actions --actions actions --port "$ACTION_PORT" --quiet ;;
    rasa)
      load_token
      write_endpoints
      exec "$RASA" run --model "$MODEL" --port "$RASA_PORT" --enable-api --auth-token "$RASA_AUTH_TOKEN" \
        --endpoints "$VAR_DIR/endpoints.yml" --credentials "$ROOT/credentials.yml" ;;  # no --cors: web chat sites are WEB_ALLOWED_ORIGINS
    web)
      exec "$PY" "$ROOT/web/serve.py" --port "$WEB_PORT" ;;
    review)
      load_token  # staff replies and takeovers go through the bot's HTTP API (bot/review/replies.py)
      exec "$PY" -m bot.review serve --port "$REVIEW_PORT" ;;
    alerts)
      # escalation alerts: RabbitMQ (RABBITMQ_URL) and/or the tracker store's events table -> SMTP, Twilio SMS
      exec "$PY" -m bot.alerts worker ;;
    outreach)
      # reminders and check-ins (bot/outreach/worker.py): due texts -> Twilio REST; each added to the conversation
      load_token  # through the bot's HTTP API
      exec "$PY" -m bot.outreach.worker ;;
    *)
      echo "usage: run.sh part actions|rasa|web|review|alerts|outreach" >&2
      exit 2 ;;
  esac
}

ctl() {
  exec "$ROOT/.venv/bin/supervisorctl" -c "$SUPERVISOR_CONF" "$@"
}

# The whole command runs from inside one function, read completely before it starts, so editing this file
# while `make run` is running cannot break the running script.
main() {
  case "${1:-}" in
    part) part "${2:-}" ;;
    ctl) shift; ctl "$@" ;;
    shell)
      exec "$PY" -m bot.console --server "http://127.0.0.1:$RASA_PORT" ;;
    "") ;;
    *) echo "usage: run.sh [shell | part NAME | ctl ARGS]" >&2; exit 2 ;;
  esac

  load_token
  "$ROOT/.venv/bin/supervisord" -n -c "$SUPERVISOR_CONF" &
  supervisor_pid=$!
  stop() {
    trap - INT TERM
    kill -TERM "$supervisor_pid" 2>/dev/null || true
    wait "$supervisor_pid" 2>/dev/null || true
    exit 0
  }
  trap stop INT TERM

  echo "Starting (ready in about 30 s; logs in $VAR_DIR/*.log, restarts in $VAR_DIR/supervisord.log) ..."
  ready=""
  for _ in $(seq 1 300); do
    if ! kill -0 "$supervisor_pid" 2>/dev/null; then
      echo "supervisord stopped; see $VAR_DIR/supervisord.log" >&2
      exit 1
    fi
    if curl -fs "http://127.0.0.1:$RASA_PORT/status?token=$RASA_AUTH_TOKEN" >/dev/null 2>&1; then ready=1; break; fi
    sleep 1 &
    wait $! || true
  done
  if [ -z "$ready" ]; then
    echo "The Rasa server did not answer within 300 s; see $VAR_DIR/rasa.log (still supervised)." >&2
  fi
  cat <<MSG

  Bot ready.
  Website chat demo:   http://localhost:$WEB_PORT/
  REST webhook:        POST http://localhost:$RASA_PORT/webhooks/rest/webhook?token=<HTTP API token>  {"sender": "id", "message": "text"}
  SMS (Twilio):        POST http://localhost:$RASA_PORT/webhooks/sms/webhook   (set TWILIO_AUTH_TOKEN)
  HTTP API token:      $token_note
  Staff review app:    http://localhost:$REVIEW_PORT/   (create an account: make staff-user USERNAME=you)
  Escalation alerts:   $ALERTS_NOTE   (README "Escalation alerts"; log $VAR_DIR/alerts.log)
  Reminders/check-ins: appointments in the review app; texts sent by the outreach worker (README "Reminders and check-ins"; log $VAR_DIR/outreach.log)
  Terminal chat:       make shell
  Processes:           scripts/run.sh ctl status   (a part that stops is restarted; see $VAR_DIR/supervisord.log)

  Ctrl-C stops everything.
MSG
  wait "$supervisor_pid" || true
}

main "$@"; exit
