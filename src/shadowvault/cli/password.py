"""Where the repository password comes from: env var, password file, or a prompt on a terminal."""

from __future__ import annotations

import getpass
import os
import sys
from pathlib import Path

from shadowvault.errors import UsageError

ENV_PASSWORD = "SHADOWVAULT_PASSWORD"


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


def get_password(password_file: Path | None, *, confirm: bool = False) -> str:
    """$SHADOWVAULT_PASSWORD, else the password file, else a prompt when stdin is a terminal."""
    env = os.environ.get(ENV_PASSWORD)
    if env:
        return env
    if password_file is not None:
        return read_password_file(password_file)
    if not sys.stdin.isatty():
        raise UsageError(
            f"no repository password: set {ENV_PASSWORD} or pass --password-file (no terminal to prompt on)"
        )
    pw = getpass.getpass("repository password: ")
    if confirm and getpass.getpass("enter the password again: ") != pw:
        raise UsageError("the two passwords differ: run the command again")
    if not pw:
        raise UsageError("an empty password is not allowed")
    return pw
