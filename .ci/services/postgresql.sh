#!/usr/bin/env bash
# A private PostgreSQL server for the tests: `start DIR` creates a cluster under DIR/postgresql
# (initdb as the postgres user, password auth on a free loopback port, trust only on its own
# socket directory), starts it and prints `export SHADOWVAULT_TEST_PG_...=` lines; `stop DIR`
# ends it. Run as root (the server refuses to run as root, so it runs as `postgres`).
set -euo pipefail
cmd=${1:?usage: postgresql.sh start|stop DIR}
dir=${2:?usage: postgresql.sh start|stop DIR}
base="$dir/postgresql"
bin=${SHADOWVAULT_PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)}
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

case "$cmd" in
start)
  mkdir -p "$base"
  chmod 0711 "$dir"  # the server's user must reach its directory below DIR
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  password=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
  umask 077
  printf '%s\n' "$password" > "$base/password"
  printf '127.0.0.1:%s:*:postgres:%s\n' "$port" "$password" > "$base/pgpass"
  mkdir -p "$base/data" "$base/sock"
  printf '%s\n' "$password" > "$base/pwfile.init"
  [ "$(id -u)" = 0 ] && chown -R postgres: "$base/data" "$base/sock" "$base/pwfile.init"
  as_pg "$bin/initdb" -D "$base/data" -U postgres --pwfile="$base/pwfile.init" \
    --auth-host=scram-sha-256 --auth-local=trust -E UTF8 --locale=C.UTF-8 >"$base/initdb.log" 2>&1
  rm -f "$base/pwfile.init"
  as_pg "$bin/pg_ctl" -D "$base/data" -l "$base/data/server.log" -w -t 60 \
    -o "-p $port -k $base/sock -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
  echo "export SHADOWVAULT_TEST_PG_HOST=127.0.0.1"
  echo "export SHADOWVAULT_TEST_PG_PORT=$port"
  echo "export SHADOWVAULT_TEST_PG_USER=postgres"
  echo "export SHADOWVAULT_TEST_PG_PASSWORD_FILE=$base/password"
  echo "export SHADOWVAULT_TEST_PG_SOCKET_DIR=$base/sock"
  echo "export SHADOWVAULT_TEST_PG_DATA=$base/data"
  echo "export SHADOWVAULT_TEST_PG_BIN=$bin"
  ;;
stop)
  if [ -f "$base/data/postmaster.pid" ]; then
    as_pg "$bin/pg_ctl" -D "$base/data" -m fast -w stop >/dev/null 2>&1 || true
  fi
  ;;
*)
  echo "usage: postgresql.sh start|stop DIR" >&2
  exit 2
  ;;
esac
