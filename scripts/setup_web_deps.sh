#!/usr/bin/env bash
# Installs the website widget's npm packages (pinned in web/package-lock.json), served locally: no CDN.
set -euo pipefail
cd "$(dirname "$0")/../web"
[ -f package-lock.json ] || exit 0
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  command -v npm >/dev/null || { echo "ERROR: npm is needed for the website widget (apt-get install nodejs npm)." >&2; exit 1; }
  echo "setup: installing website widget packages (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error
fi
