#!/usr/bin/env bash
# Debian's OpenSSH server for the SFTP tests: an sshd on a free loopback port with its own host key
# and one authorized client key, all made in DIR, plus an ssh client config that pins that host
# key (HostKeyAlias + a known_hosts file of its own), so the tests never touch ~/.ssh.
#   start DIR  -> prints export lines: SHADOWVAULT_TEST_SSH_HOST (the alias to connect to),
#                 SHADOWVAULT_TEST_SSH_CONFIG (ssh -F FILE), SHADOWVAULT_TEST_SSH_ROOT (a directory
#                 the tests may fill), SHADOWVAULT_TEST_SSH_PORT
#   stop DIR
set -euo pipefail
cmd=${1:?start|stop}
dir=${2:?DIR}
dir=$(cd "$dir" && pwd)
pidfile="$dir/sshd.pid"
case "$cmd" in
start)
  mkdir -p "$dir/ssh" "$dir/sftp" /run/sshd
  ssh-keygen -q -t ed25519 -N '' -f "$dir/ssh/host_key" -C sv-test-host
  ssh-keygen -q -t ed25519 -N '' -f "$dir/ssh/id_ed25519" -C sv-test-client
  cp "$dir/ssh/id_ed25519.pub" "$dir/ssh/authorized_keys"
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  cat >"$dir/ssh/sshd_config" <<CFG
Port $port
ListenAddress 127.0.0.1
HostKey $dir/ssh/host_key
PidFile $pidfile
AuthorizedKeysFile $dir/ssh/authorized_keys
StrictModes no
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
Subsystem sftp internal-sftp
CFG
  echo "sv-sftp-test $(cut -d' ' -f1,2 "$dir/ssh/host_key.pub")" >"$dir/ssh/known_hosts"
  cat >"$dir/ssh/ssh_config" <<CFG
Host sv-sftp-test
  HostName 127.0.0.1
  Port $port
  User $(id -un)
  HostKeyAlias sv-sftp-test
  IdentityFile $dir/ssh/id_ed25519
  IdentitiesOnly yes
  UserKnownHostsFile $dir/ssh/known_hosts
  GlobalKnownHostsFile /dev/null
  StrictHostKeyChecking yes
  BatchMode yes
  LogLevel ERROR
CFG
  /usr/sbin/sshd -f "$dir/ssh/sshd_config" -E "$dir/ssh/sshd.log"
  for _ in $(seq 100); do
    if ssh -F "$dir/ssh/ssh_config" sv-sftp-test true 2>/dev/null; then break; fi
    sleep 0.1
  done
  echo "export SHADOWVAULT_TEST_SSH_HOST=sv-sftp-test"
  echo "export SHADOWVAULT_TEST_SSH_CONFIG=$dir/ssh/ssh_config"
  echo "export SHADOWVAULT_TEST_SSH_ROOT=$dir/sftp"
  echo "export SHADOWVAULT_TEST_SSH_PORT=$port"
  ;;
stop)
  if [ -f "$pidfile" ]; then
    kill "$(cat "$pidfile")" 2>/dev/null || true
    rm -f "$pidfile"
  fi
  ;;
*) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac
