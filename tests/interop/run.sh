#!/usr/bin/env bash
# Runs the interop tests (node's test runner). Needs HOOKD_BIN, node and the
# packages from `npm ci` in this folder (scripts/test installs them).
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -d node_modules/standardwebhooks ]; then
  echo "interop: node_modules missing; run npm ci in tests/interop (scripts/test does)" >&2
  exit 1
fi
exec node --test interop.test.mjs rotation.test.mjs
