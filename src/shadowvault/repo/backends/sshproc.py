"""The ``ssh … -s sftp`` child of an SFTP connection, without the SFTP protocol (no paramiko).

Kept apart from ``sftp.py`` so ``open_backend`` can start the first ``ssh`` before it imports
paramiko: the SSH handshake (a process start, key exchange and authentication, ~0.2-0.5 s) then
runs while Python imports paramiko and cryptography (~0.3-0.6 s) instead of after it.
"""

from __future__ import annotations

import collections
import contextlib
import shlex
import subprocess
import threading

from shadowvault.repo.backends.options import BackendOptions
from shadowvault.repo.location import SftpLocation

_STDERR_LINES = 20


def sftp_argv(loc: SftpLocation, opts: BackendOptions) -> list[str]:
    """The command line that starts the SFTP subsystem on the server."""
    if opts.sftp_command:
        return shlex.split(opts.sftp_command)
    argv = ["ssh"]
    if opts.ssh_config:
        argv += ["-F", opts.ssh_config]
    if loc.port is not None:
        argv += ["-p", str(loc.port)]
    if loc.user:
        argv += ["-l", loc.user]
    # Never accept an unknown host key on the user's behalf; no X11/agent forwarding needed.
    # "--" keeps a host name starting with "-" from being read as an option.
    argv += ["-o", "StrictHostKeyChecking=yes", "-x", "-a", "-s", "--", loc.host, "sftp"]
    return argv


class SshProcess:
    """One ``ssh`` child with pipes for SFTP and the last lines it wrote to stderr.

    ``FileNotFoundError`` from the constructor when the program does not exist.
    """

    def __init__(self, argv: list[str]) -> None:
        self.stderr: collections.deque[str] = collections.deque(maxlen=_STDERR_LINES)
        # stderr is read by a thread (never left to fill its pipe); a password prompt, if the
        # user's setup needs one, goes to the terminal directly, as with restic.
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0
        )
        self._reader = threading.Thread(target=self._drain, daemon=True, name="ssh-stderr")
        self._reader.start()

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            line = raw.decode(errors="replace").strip()
            if line:
                self.stderr.append(line)

    def explain(self) -> str:
        """What ssh said, as one line ("" when it said nothing)."""
        return " / ".join(self.stderr)

    def kill(self) -> None:
        """End the child and wait for it (and for its last stderr lines)."""
        if self.proc.poll() is None:
            self.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        self._reader.join(timeout=2)
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if f is not None:
                with contextlib.suppress(OSError):
                    f.close()
