#!/usr/bin/env bash
# Validates docs/openapi.yaml against the official OpenAPI 3.0 schema with
# @seriousme/openapi-schema-validator (from `npm ci` in this folder; scripts/test installs it), then
# proves the validator can fail: a copy of the spec with a response given an unknown keyword must
# be reported invalid.
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -d node_modules/@seriousme/openapi-schema-validator ]; then
  echo "openapi: node_modules missing; run npm ci in tests/openapi (scripts/test does)" >&2
  exit 1
fi
spec=../../docs/openapi.yaml
node validate.mjs "$spec"

broken_dir=$(mktemp -d)
trap 'rm -rf "$broken_dir"' EXIT
broken="$broken_dir/openapi.yaml"
# The first response ('        "NNN":' then its 10-space description) gains a sibling keyword that
# OpenAPI's Response Object does not allow.
awk '!done && /^          description:/ && prev ~ /^        "[0-9][0-9][0-9]":/ {
       print; print "          descripton: typo"; done = 1; prev = $0; next }
     { print; prev = $0 }' "$spec" >"$broken"
if cmp -s "$spec" "$broken"; then
  echo "openapi: could not make the broken copy (no response found)" >&2
  exit 1
fi
if out=$(node validate.mjs "$broken" 2>&1); then
  echo "openapi: FAIL: a response with an unknown keyword was reported valid" >&2
  exit 1
fi
# It must be rejected for that keyword, not for some other reason (a crash, say).
if ! grep -q descripton <<<"$out"; then
  echo "openapi: FAIL: the broken copy was rejected without naming the bad keyword:" >&2
  echo "$out" >&2
  exit 1
fi
echo "openapi: the broken copy was reported invalid, as it must be"
