"""Where the repository password comes from: env var, a command, a password file, or a prompt."""

from __future__ import annotations

import getpass
import os
import shlex
import subprocess
import sys
from pathlib import Path

from shadowvault.errors import UsageError

ENV_PASSWORD = "SHADOWVAULT_PASSWORD"
ENV_PASSWORD_FILE = "SHADOWVAULT_PASSWORD_FILE"
ENV_PASSWORD_COMMAND = "SHADOWVAULT_PASSWORD_COMMAND"
_COMMAND_TIMEOUT = 120.0


def read_password_file(path: Path) -> str:
    """First line of the password file (trailing newline removed)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise UsageError(f"cannot read password file {path}: {e.strerror}") from None
    line = text.splitlines()[0] if text else ""
    if not line:
        raise UsageError(f"password file {path} is empty: put the repository password on its first line")
    return line


def run_password_command(command: str) -> str:
    """First line of what ``command`` prints (split like a shell would, run without one).

    The command line is named in errors but its output never is: it is the secret.
    """
    argv = shlex.split(command)
    if not argv:
        raise UsageError("--password-command is empty: give a command that prints the password")
    try:
        p = subprocess.run(
            argv, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, timeout=_COMMAND_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise UsageError(f"password command {argv[0]!r} could not run: {e}") from None
    if p.returncode != 0:
        raise UsageError(
            f"password command {argv[0]!r} exited {p.returncode}: fix it or give the password otherwise"
        )
    lines = p.stdout.decode("utf-8", "replace").splitlines()
    if not lines or not lines[0]:
        raise UsageError(f"password command {argv[0]!r} printed no password on its first line")
    return lines[0]


def get_password(password_file: Path | None, *, confirm: bool = False, command: str | None = None) -> str:
    """$SHADOWVAULT_PASSWORD, else the password command (option or env), else the password file
    (option, env or configuration), else a prompt when stdin is a terminal."""
    env = os.environ.get(ENV_PASSWORD)
    if env:
        return env
    command = command or os.environ.get(ENV_PASSWORD_COMMAND)
    if command:
        return run_password_command(command)
    if password_file is None and os.environ.get(ENV_PASSWORD_FILE):
        password_file = Path(os.environ[ENV_PASSWORD_FILE])
    if password_file is not None:
        return read_password_file(password_file)
    if not sys.stdin.isatty():
        raise UsageError(
            f"no repository password: set {ENV_PASSWORD} or pass --password-file or --password-command "
            "(no terminal to prompt on)"
        )
    pw = getpass.getpass("repository password: ")
    if confirm and getpass.getpass("enter the password again: ") != pw:
        raise UsageError("the two passwords differ: run the command again")
    if not pw:
        raise UsageError("an empty password is not allowed")
    return pw
