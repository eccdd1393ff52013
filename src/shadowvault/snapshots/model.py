"""Value types of the snapshot layer: modes, volumes, handles and session names.

Everything here is immutable and free of I/O, so the session and the providers
can pass these values around (and tests can build them) without touching a
file system. The naming helpers are the one place that knows how a session id
is spelled inside snapshot names, which is what lets the next session tell a
crashed session's leftovers from a running session's snapshots.
"""

from __future__ import annotations

import enum
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "DEFAULT_PREFIX",
    "Handle",
    "SnapshotMode",
    "Unsupported",
    "Volume",
    "is_stale_session",
    "new_session_id",
    "session_pid",
    "split_session",
]

#: Every name a provider creates starts with this (LV and dataset snapshot names)
#: or with "." + this (hidden directories and btrfs snapshots).
DEFAULT_PREFIX = "shadowvault"


class SnapshotMode(enum.Enum):
    """Per backup set: whether volumes are snapshotted before reading."""

    OFF = "off"
    AUTO = "auto"
    REQUIRED = "required"


@dataclass(frozen=True)
class Volume:
    """Something one provider can snapshot as a unit.

    ``key`` identifies the volume within its provider (a subvolume path, a
    ``VG/LV``, a dataset, a mount point), so sources that share it share one
    snapshot. ``root`` is the live directory that the snapshot's root mirrors.
    """

    provider: str
    key: str
    root: Path
    fs_type: str = ""
    source: str = ""
    #: provider-specific facts found by supports() and needed by create()
    details: tuple[tuple[str, str], ...] = ()

    def detail(self, name: str, default: str = "") -> str:
        """Look up one provider-specific fact."""
        return dict(self.details).get(name, default)


@dataclass(frozen=True)
class Unsupported:
    """A provider's answer that it cannot snapshot a path, with the reason for people."""

    provider: str
    reason: str


@dataclass(frozen=True)
class Handle:
    """One snapshot (or reflink work dir) that exists and must be deleted.

    ``name`` is what the provider's tool calls it (a path, ``VG/LV``,
    ``dataset@snap``); ``path`` is where its content can be read, if anywhere.
    Stale handles found by ``list_stale`` may lack the volume.
    """

    provider: str
    name: str
    session: str
    path: Path | None = None
    volume: Volume | None = None
    details: tuple[tuple[str, str], ...] = ()

    def detail(self, name: str, default: str = "") -> str:
        """Look up one provider-specific fact."""
        return dict(self.details).get(name, default)


def new_session_id(pid: int | None = None) -> str:
    """A fresh session id ``<pid>-<8 hex>``; the pid lets others check liveness."""
    return f"{os.getpid() if pid is None else pid}-{secrets.token_hex(4)}"


def split_session(text: str) -> tuple[str, str] | None:
    """Split ``<pid>-<hex8>[rest]`` into (session id, rest), or None if it is not one."""
    pid, sep, tail = text.partition("-")
    if not sep or not pid.isdigit() or len(tail) < 8:
        return None
    token, rest = tail[:8], tail[8:]
    if any(c not in "0123456789abcdef" for c in token):
        return None
    return f"{pid}-{token}", rest


def session_pid(session: str) -> int | None:
    """The process id embedded in a session id, or None if malformed."""
    parsed = split_session(session)
    if parsed is None or parsed[1]:
        return None
    return int(parsed[0].partition("-")[0])


def is_stale_session(
    session: str, *, alive: frozenset[int], own_pid: int, own_sessions: frozenset[str]
) -> bool:
    """Decide whether a snapshot named for ``session`` was left by a dead session.

    A session is live while its process runs; within our own process only the
    sessions still open are live. Malformed ids are treated as stale because
    only our own code writes names with our prefix. A reused pid keeps a dead
    session's snapshot alive until that pid goes away: the safe direction.
    """
    pid = session_pid(session)
    if pid is None:
        return True
    if pid == own_pid:
        return session not in own_sessions
    return pid not in alive
