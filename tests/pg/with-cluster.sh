#!/usr/bin/env bash
# tests/pg/with-cluster.sh CMD [ARG...]: runs CMD with HOOKD_TEST_PG_URL set to the admin URL of
# a PostgreSQL database of its own, and exits with CMD's status.
# - HOOKD_TEST_PG_SHARED_URL set (scripts/test starts one cluster for the whole run and sets
#   it to that cluster's admin URL): a new database with a unique name in that cluster
#   (CREATE DATABASE), dropped at the end (WITH (FORCE): sessions left over are ended). A
#   database, not a schema: LISTEN/NOTIFY channels and advisory locks are per database, so
#   tests running at once do not hear or block each other.
# - Not set (e.g. `meson test -C build-test NAME` alone): a throwaway cluster of its own
#   (cluster.sh), stopped and removed at the end.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
[ $# -ge 1 ] || { echo "usage: with-cluster.sh CMD [ARG...]" >&2; exit 2; }
trap 'exit 130' INT
trap 'exit 143' TERM

if [ -n "${HOOKD_TEST_PG_SHARED_URL:-}" ]; then
	shared=$HOOKD_TEST_PG_SHARED_URL
	name="t_$$_$(date +%s%N | tail -c 10)_${RANDOM}"
	url=$("$here/cluster.sh" createdb "$shared" "$name") || exit 1
	trap '"$here/cluster.sh" dropdb "$shared" "$name"' EXIT
else
	dir=$(mktemp -d "${HOOKD_PG_TMP:-/tmp}/hookd-pg.XXXXXX") || exit 1
	trap '"$here/cluster.sh" stop "$dir"' EXIT
	url=$("$here/cluster.sh" start "$dir") || exit 1
fi
export HOOKD_TEST_PG_URL="$url"
# The shared cluster stays the run's: CMD sees only its own database.
unset HOOKD_TEST_PG_SHARED_URL
"$@"
