#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests (no system service needed).
#   tests/pg/cluster.sh start DIR   initdb + pg_ctl start in DIR (made if missing, must be empty),
#                                   on a free loopback port with its unix socket in DIR too;
#                                   prints the admin URL (database postgres, user postgres,
#                                   trust auth) on stdout
#   tests/pg/cluster.sh stop DIR    stops the cluster in DIR and removes DIR
#   tests/pg/cluster.sh createdb URL NAME   creates database NAME on the cluster of admin URL
#                                   (as start printed it); prints NAME's URL (the same, with
#                                   the database NAME)
#   tests/pg/cluster.sh dropdb URL NAME     drops database NAME, ending its sessions (FORCE)
# Run as root, the cluster runs as the `postgres` user (PostgreSQL refuses root): DIR is given
# to it. initdb is looked for in /usr/lib/postgresql/15/bin first, then on PATH. DIR's path
# must be short (a unix socket path has at most 107 bytes): use /tmp, not a build tree.
# The settings favour speed over durability (fsync off): the data is thrown away.
# HOOKD_PG_SETTINGS adds server settings after those ("-c name=value ..."; later ones win):
# bench/pg.py turns durability back on with it.
set -euo pipefail

die() {
	echo "cluster.sh: $*" >&2
	exit 1
}

pg_bin() {
	local name=$1
	if [ -x "/usr/lib/postgresql/15/bin/$name" ]; then
		echo "/usr/lib/postgresql/15/bin/$name"
	elif command -v "$name" >/dev/null 2>&1; then
		command -v "$name"
	else
		die "$name not found (install Debian's postgresql: scripts/install-deps --test)"
	fi
}

# Runs a command as the cluster's owner: postgres when we are root, else ourselves.
as_owner() {
	if [ "$(id -u)" -eq 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

start() {
	local dir=$1 initdb pg_ctl port
	initdb=$(pg_bin initdb)
	pg_ctl=$(pg_bin pg_ctl)
	mkdir -p "$dir"
	[ -z "$(ls -A "$dir")" ] || die "$dir is not empty"
	if [ "$(id -u)" -eq 0 ]; then
		chown postgres: "$dir"
	fi
	chmod 700 "$dir"
	as_owner "$initdb" -D "$dir/data" --auth=trust --username=postgres --encoding=UTF8 \
		--locale=C --no-sync >"$dir/initdb.log" 2>&1 ||
		{ cat "$dir/initdb.log" >&2; die "initdb failed"; }
	# A port picked free can be taken before the server binds it: try a few.
	for _ in 1 2 3 4 5; do
		port=$(free_port)
		if as_owner "$pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 -s \
			-o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off \
			-c synchronous_commit=off -c full_page_writes=off -c shared_buffers=16MB \
			-c max_connections=200 ${HOOKD_PG_SETTINGS:-}" start >/dev/null 2>&1; then
			echo "$port" >"$dir/port"
			echo "postgresql:///postgres?host=$dir&port=$port&user=postgres"
			return 0
		fi
	done
	cat "$dir/server.log" >&2 || true
	die "the server did not start"
}

stop() {
	local dir=$1 pg_ctl
	[ -d "$dir" ] || return 0
	pg_ctl=$(pg_bin pg_ctl)
	if [ -f "$dir/data/postmaster.pid" ]; then
		as_owner "$pg_ctl" -D "$dir/data" -m immediate -w -s stop >/dev/null 2>&1 || true
	fi
	rm -rf "$dir"
}

psql_admin() {
	local url=$1 sql=$2
	"$(pg_bin psql)" -X -q -v ON_ERROR_STOP=1 -c "$sql" "$url" >/dev/null
}

# NAME: lower-case letters, digits and _ only (it is not quoted in the SQL).
check_name() {
	[[ "$1" =~ ^[a-z_][a-z0-9_]*$ ]] || die "bad database name '$1'"
}

createdb() {
	local url=$1 name=$2 base rest
	check_name "$name"
	[[ "$url" =~ ^(postgres(ql)?://[^/?]*)(/[^?]*)?(\?.*)?$ ]] || die "not a postgresql:// URL"
	base=${BASH_REMATCH[1]}
	rest=${BASH_REMATCH[4]}
	psql_admin "$url" "CREATE DATABASE $name" || die "CREATE DATABASE $name failed"
	echo "$base/$name$rest"
}

dropdb() {
	check_name "$2"
	psql_admin "$1" "DROP DATABASE IF EXISTS $2 WITH (FORCE)" || die "DROP DATABASE $2 failed"
}

case "${1:-}" in
start) [ $# -eq 2 ] || die "usage: cluster.sh start DIR"; start "$2" ;;
stop) [ $# -eq 2 ] || die "usage: cluster.sh stop DIR"; stop "$2" ;;
createdb) [ $# -eq 3 ] || die "usage: cluster.sh createdb URL NAME"; createdb "$2" "$3" ;;
dropdb) [ $# -eq 3 ] || die "usage: cluster.sh dropdb URL NAME"; dropdb "$2" "$3" ;;
*) die "usage: cluster.sh start|stop DIR | createdb|dropdb URL NAME" ;;
esac
