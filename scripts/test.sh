#!/usr/bin/env bash
# Every check, fast ones first. Called by `make test` (after setup and training).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
RASA=.venv/bin/rasa
step() { printf '\n=== %s\n' "$*"; }

step "pip check (pinned packages are consistent)"
$PY -m pip check

step "ruff"
.venv/bin/ruff check bot actions tests scripts

step "rasa data validate --fail-on-warnings"
$RASA data validate --fail-on-warnings --quiet

step "e2e test stories (rasa test --fail-on-prediction-errors)"
rm -rf results/stories
$RASA test core --model models/clinic.tar.gz --stories tests/stories --fail-on-prediction-errors \
  --out results/stories --quiet --no-plot

step "pytest (unit, knowledge, triage, actions, held-out NLU accuracy, real server, browser, review)"
REVIEW_REQUIRE_POSTGRES=1 $PY -m pytest tests -q -p no:cacheprovider
