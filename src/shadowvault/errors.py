"""Error hierarchy shared by every layer.

Per-file problems are *values* (``openfiles.FileOutcome``), never exceptions.
Exceptions here are for things that stop a command; each carries the exit code
the CLI returns and a one-line message that names the thing and what to do::

    ShadowvaultError (exit 1)
    ├── UsageError        (exit 2)  bad command-line arguments
    ├── ConfigError       (exit 2)  bad configuration file or value (file:line)
    ├── RepoError         (exit 1)  repository cannot be used
    │   ├── RepoNotFoundError       no repository at that location
    │   ├── WrongPasswordError      no key file opens with that password
    │   ├── RepoLockedError         another client holds a conflicting lock
    │   ├── UnsupportedRepoError    unknown repository version / format
    │   └── IntegrityError          stored data does not match its hash / MAC
    ├── SnapshotError     (exit 1)  a volume snapshot could not be made or removed
    └── FatalError        (exit 1)  a session had to stop; no snapshot written
"""

from __future__ import annotations


class ShadowvaultError(Exception):
    """Base of every error that stops a command. ``str(e)`` is the one-line message."""

    exit_code: int = 1


class UsageError(ShadowvaultError):
    """Command-line arguments that cannot be acted on."""

    exit_code = 2


class ConfigError(ShadowvaultError):
    """Invalid configuration; the message carries file, line, key and allowed values."""

    exit_code = 2


class RepoError(ShadowvaultError):
    """The repository cannot be opened, read or written."""


class RepoNotFoundError(RepoError):
    """No repository exists at the given location."""


class WrongPasswordError(RepoError):
    """The password opens none of the repository's key files."""


class RepoLockedError(RepoError):
    """Another client holds a lock that conflicts with the requested one."""


class UnsupportedRepoError(RepoError):
    """The repository uses a version or feature this client does not know."""


class IntegrityError(RepoError):
    """Stored data failed its MAC or hash check."""


class SnapshotError(ShadowvaultError):
    """A volume or file snapshot could not be created, used or removed."""


class FatalError(ShadowvaultError):
    """A session could not continue; nothing was committed."""
