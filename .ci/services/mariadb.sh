#!/usr/bin/env bash
# A private MariaDB server for the tests: `start DIR` installs a data directory under DIR/mariadb
# (mariadb-install-db), starts mariadbd as the mysql user on a free loopback port and a socket
# under DIR, creates a password user `shadowvault` with every privilege, and prints
# `export SHADOWVAULT_TEST_MARIADB_...=` lines; `stop DIR` ends it.
set -euo pipefail
cmd=${1:?usage: mariadb.sh start|stop DIR}
dir=${2:?usage: mariadb.sh start|stop DIR}
base="$dir/mariadb"

case "$cmd" in
start)
  mkdir -p "$base/data" "$base/run"
  chmod 0711 "$dir"  # the server's user must reach its directory below DIR
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  password=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
  umask 077
  printf '%s\n' "$password" > "$base/password"
  user=mysql
  [ "$(id -u)" = 0 ] || user=$(id -un)
  [ "$(id -u)" = 0 ] && chown -R mysql: "$base/data" "$base/run"
  chmod 0755 "$base" "$base/run"
  mariadb-install-db --user="$user" --datadir="$base/data" --auth-root-authentication-method=socket \
    --skip-test-db >"$base/install.log" 2>&1
  sock="$base/run/mariadb.sock"
  mariadbd --no-defaults --user="$user" --datadir="$base/data" --socket="$sock" --port="$port" \
    --bind-address=127.0.0.1 --pid-file="$base/run/mariadb.pid" --log-error="$base/error.log" \
    --innodb-buffer-pool-size=64M --innodb-log-file-size=48M --skip-name-resolve \
    --innodb-flush-log-at-trx-commit=2 >/dev/null 2>&1 &
  for _ in $(seq 1 120); do
    mariadb --no-defaults --socket="$sock" -u root -e 'SELECT 1' >/dev/null 2>&1 && break
    sleep 0.5
  done
  mariadb --no-defaults --socket="$sock" -u root <<SQL
CREATE USER 'shadowvault'@'127.0.0.1' IDENTIFIED BY '$password';
CREATE USER 'shadowvault'@'localhost' IDENTIFIED BY '$password';
GRANT ALL PRIVILEGES ON *.* TO 'shadowvault'@'127.0.0.1' WITH GRANT OPTION;
GRANT ALL PRIVILEGES ON *.* TO 'shadowvault'@'localhost' WITH GRANT OPTION;
SQL
  echo "export SHADOWVAULT_TEST_MARIADB_HOST=127.0.0.1"
  echo "export SHADOWVAULT_TEST_MARIADB_PORT=$port"
  echo "export SHADOWVAULT_TEST_MARIADB_SOCKET=$sock"
  echo "export SHADOWVAULT_TEST_MARIADB_USER=shadowvault"
  echo "export SHADOWVAULT_TEST_MARIADB_PASSWORD_FILE=$base/password"
  echo "export SHADOWVAULT_TEST_MARIADB_DATADIR=$base/data"
  ;;
stop)
  pidfile="$base/run/mariadb.pid"
  if [ -f "$pidfile" ]; then
    pid=$(cat "$pidfile")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 120); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  fi
  ;;
*)
  echo "usage: mariadb.sh start|stop DIR" >&2
  exit 2
  ;;
esac
