#!/usr/bin/env bash
# Starts the action server, the Rasa server (REST + socket.io + SMS), the website demo and the staff review app.
# `run.sh shell` chats in the terminal instead. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p var
RASA=.venv/bin/rasa
PY=.venv/bin/python
RASA_PORT=${RASA_PORT:-5005}
ACTION_PORT=${ACTION_PORT:-5055}
WEB_PORT=${WEB_PORT:-8080}
REVIEW_PORT=${REVIEW_PORT:-8081}

pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

$RASA run actions --actions actions --port "$ACTION_PORT" --quiet > var/actions.log 2>&1 &
pids+=($!)

if [ "${1:-}" = "shell" ]; then
  $RASA shell --model models/clinic.tar.gz --endpoints endpoints.yml --quiet
  exit 0
fi

# The HTTP API is only ever enabled with a token.
if [ -z "${RASA_AUTH_TOKEN:-}" ]; then
  if [ ! -s var/rasa_auth_token ]; then
    (umask 077; $PY -c 'import secrets; print(secrets.token_urlsafe(32))' > var/rasa_auth_token)
  fi
  RASA_AUTH_TOKEN=$(cat var/rasa_auth_token)
  token_note="generated, saved in var/rasa_auth_token"
else
  token_note="from RASA_AUTH_TOKEN"
fi
export RASA_AUTH_TOKEN  # the REST channel checks it too

$RASA run --model models/clinic.tar.gz --port "$RASA_PORT" --enable-api --auth-token "$RASA_AUTH_TOKEN" \
  --endpoints endpoints.yml --credentials credentials.yml --cors "${RASA_CORS_ORIGINS:-*}" > var/rasa.log 2>&1 &
pids+=($!)

if [ -f web/serve.py ]; then
  RASA_SERVER_URL="http://localhost:$RASA_PORT" $PY web/serve.py --port "$WEB_PORT" > var/web.log 2>&1 &
  pids+=($!)
fi
if [ -f bot/review/__main__.py ]; then
  $PY -m bot.review serve --port "$REVIEW_PORT" > var/review.log 2>&1 &
  pids+=($!)
fi

echo "Starting (ready in about 10 s; logs in var/*.log) ..."
for _ in $(seq 1 180); do
  if curl -fs "http://127.0.0.1:$RASA_PORT/status?token=$RASA_AUTH_TOKEN" >/dev/null 2>&1; then break; fi
  sleep 1
done
cat <<MSG

  Bot ready.
  Website chat demo:   http://localhost:$WEB_PORT/
  REST webhook:        POST http://localhost:$RASA_PORT/webhooks/rest/webhook?token=<HTTP API token>  {"sender": "id", "message": "text"}
  SMS (Twilio):        POST http://localhost:$RASA_PORT/webhooks/sms/webhook   (set TWILIO_AUTH_TOKEN)
  HTTP API token:      $token_note
  Staff review app:    http://localhost:$REVIEW_PORT/   (create an account: make staff-user USERNAME=you)
  Terminal chat:       make shell

  Ctrl-C stops everything.
MSG
wait -n "${pids[@]}"
