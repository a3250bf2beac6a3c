#!/usr/bin/env bash
# Runs the browser tests (node's test runner) of the inspector. Needs HOOKD_BIN, node, Debian's
# chromium (/usr/bin/chromium, or HOOKD_CHROMIUM) and playwright-core from `npm ci` in this folder
# (scripts/test installs it). Arguments: the test files (default ui.test.mjs).
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -d node_modules/playwright-core ]; then
  echo "ui: node_modules missing; run npm ci in tests/ui (scripts/test does)" >&2
  exit 1
fi
if [ "$#" -eq 0 ]; then
  set -- ui.test.mjs
fi
exec node --test "$@"
