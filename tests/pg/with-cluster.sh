#!/usr/bin/env bash
# tests/pg/with-cluster.sh CMD [ARG...]: starts a throwaway PostgreSQL cluster (cluster.sh),
# runs CMD with HOOKD_TEST_PG_URL set to its admin URL, stops and removes the cluster, and
# exits with CMD's status.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
[ $# -ge 1 ] || { echo "usage: with-cluster.sh CMD [ARG...]" >&2; exit 2; }
dir=$(mktemp -d "${HOOKD_PG_TMP:-/tmp}/hookd-pg.XXXXXX") || exit 1
trap '"$here/cluster.sh" stop "$dir"' EXIT
trap 'exit 130' INT TERM
url=$("$here/cluster.sh" start "$dir") || exit 1
export HOOKD_TEST_PG_URL="$url"
"$@"
