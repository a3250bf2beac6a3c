#!/usr/bin/env bash
# Runs one Criterion test binary and fails if a sanitizer reported anything.
# Criterion runs each test in a child process and does not count a leak
# report (or a recovered UBSan error) from that child as a failure, so the
# output is checked as well as the exit code.
set -uo pipefail
out=$(mktemp)
trap 'rm -f "$out"' EXIT
"$@" 2>&1 | tee "$out"
rc=${PIPESTATUS[0]}
if grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$out"; then
  echo "unit: a sanitizer reported an error above" >&2
  exit 1
fi
exit "$rc"
