#!/usr/bin/env bash
# Every check, fast ones first. Called by `make test` (after setup and training).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
# `rasa` without the blocks of third-party DeprecationWarnings sanic re-enables (bot/devtools/quiet_warnings.py)
RASA="$PY -m bot.devtools.quiet_rasa"
step() { printf '\n=== %s\n' "$*"; }

step "pip check (pinned packages are consistent)"
$PY -m pip check

step "ruff"
.venv/bin/ruff check bot actions tests scripts

step "rasa data validate --fail-on-warnings"
mkdir -p results
if ! $RASA data validate --fail-on-warnings --quiet > results/validate.log 2>&1; then
  cat results/validate.log
  echo "FAILED: rasa data validate (log above, also in results/validate.log)"
  exit 1
fi
notes=$(grep -c "UserWarning" results/validate.log || true)
echo "ok; ${notes} notes in results/validate.log (intents set by NLU components and responses uttered by custom actions are not in stories or NLU data)"

step "e2e test stories (rasa test --fail-on-prediction-errors)"
# Rasa always prints "Failed stories written to ..." (the file then says none failed), so its output goes
# to results/stories/test.log and only a failure is shown, in full.
rm -rf results/stories && mkdir -p results/stories
stories=$(cat tests/stories/*.yml | grep -cE "^ *- story:" || true)
if ! $RASA test core --model models/clinic.tar.gz --stories tests/stories --fail-on-prediction-errors \
     --out results/stories --quiet --no-plot > results/stories/test.log 2>&1 \
   || ! grep -q "None of the test stories failed" results/stories/failed_test_stories.yml; then
  cat results/stories/test.log
  echo; echo "--- results/stories/failed_test_stories.yml"; cat results/stories/failed_test_stories.yml 2>/dev/null || true
  echo "FAILED: e2e test stories (above; files in results/stories/)"
  exit 1
fi
echo "ok; all ${stories} test stories passed"

step "pytest (unit, knowledge, triage, actions, held-out NLU accuracy, real server, browser, review)"
REVIEW_REQUIRE_POSTGRES=1 $PY -m pytest tests -q -p no:cacheprovider
