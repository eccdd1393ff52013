"""Passwords for dump tools, handed over through private files only.

A password never goes on a command line (``/proc/PID/cmdline`` is world-readable) nor into a
child's environment (``/proc/PID/environ`` is readable by the same user and leaks into core
dumps and crash reports): it is written into a 0600 file inside a fresh 0700 directory, and the
tool is told the file's path (``PGPASSFILE`` / ``--defaults-extra-file``). The directory is
removed when the set's dumps are done.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from shadowvault.errors import ConfigError

__all__ = ["PrivateDir", "read_password"]


def read_password(path: str) -> str:
    """The first line of a password file; ``ConfigError`` when it cannot be read."""
    try:
        with open(os.path.expanduser(path), encoding="utf-8") as f:
            return f.readline().rstrip("\r\n")
    except OSError as e:
        raise ConfigError(f"password_file {path}: {e.strerror}: check the path and its permissions") from None


class PrivateDir:
    """A 0700 temporary directory for credential files; a context manager that removes it."""

    def __init__(self) -> None:
        self.path = Path(tempfile.mkdtemp(prefix="shadowvault-cred-"))
        os.chmod(self.path, 0o700)
        self._count = 0

    def write(self, name: str, text: str) -> Path:
        """Create a new file (mode 0600, never an existing one) named after ``name`` holding ``text``;
        several servers of one run each get their own."""
        self._count += 1
        path = self.path / f"{self._count}-{name}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        return path

    def close(self) -> None:
        """Remove the directory and every credential file in it."""
        shutil.rmtree(self.path, ignore_errors=True)

    def __enter__(self) -> PrivateDir:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
