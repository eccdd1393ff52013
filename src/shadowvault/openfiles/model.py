"""Value types of the open-file engine: strategies, classes, reasons, attempts and outcomes.

Everything here is a frozen value with no I/O, so it can cross layers (engine, config,
activity log, repository snapshot extra fields) as JSON. The JSON keys are part of the
repository format and must stay stable.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Strategy(StrEnum):
    """Per-backup-set open-file strategy (DESIGN "Open-file strategies")."""

    TRY_DENY_WRITE = "try-deny-write"
    DENY_WRITE = "deny-write"
    PREVENT_WRITE = "prevent-write"
    ALLOW_WRITE = "allow-write"


class Classification(StrEnum):
    """The three end-of-session classes of a file."""

    OK = "ok"
    SUSPECT = "suspect"
    FAILED = "failed"


class Reason(StrEnum):
    """Short stable code saying why a file (or one attempt) got its class."""

    # ok
    READ_UNDER_LEASE = "read-under-lease"
    READ_UNDER_LOCK = "read-under-lock"
    UNCHANGED = "unchanged"
    SNAPSHOT = "snapshot"
    SQLITE_BACKUP = "sqlite-online-backup"  # a live SQLite database copied through SQLite itself
    # suspect, or a failed attempt under the strict strategies
    CHANGED_DURING_READ = "changed-during-read"
    OPEN_FOR_WRITING = "open-for-writing"
    LEASE_BROKEN = "lease-broken"
    LEASE_REFUSED = "lease-refused"
    LOCK_REFUSED = "lock-refused"
    GROUP_CHANGED = "group-changed"  # a database group whose files were not read at one moment
    # failed
    VANISHED = "vanished"
    PERMISSION_DENIED = "permission-denied"
    NOT_REGULAR = "not-a-regular-file"
    IO_ERROR = "io-error"
    DATABASE_BUSY = "database-busy"  # a writer kept the database locked past every retry
    DATABASE_ERROR = "database-error"  # SQLite could not copy it, or the copy failed quick_check


class LeaseState(StrEnum):
    """What happened when a read lease was asked for."""

    NOT_TRIED = "not-tried"
    GRANTED = "granted"
    REFUSED = "refused"  # EAGAIN: some process has the file open for writing
    UNSUPPORTED = "unsupported"  # EACCES/EINVAL/...: not owner, no CAP_LEASE, NFS, FUSE, disabled


class LockState(StrEnum):
    """What happened when the shared OFD lock + flock were asked for."""

    NOT_TRIED = "not-tried"
    GRANTED = "granted"
    REFUSED = "refused"  # another process holds a conflicting (write) lock
    UNSUPPORTED = "unsupported"  # the file system does not do these locks


class BreakState(StrEnum):
    """Whether a writer broke our lease during the read, and who won."""

    NONE = "none"
    OUTLASTED = "outlasted"  # we released before lease-break-time: the writer waited for us
    REVOKED = "revoked"  # the kernel took the lease back while we were still reading


@dataclass(frozen=True)
class WriterInfo:
    """A process that has a file open for writing (or mapped shared-writable)."""

    pid: int
    command: str

    def describe(self) -> str:
        """Human form, e.g. ``postgres (pid 812)``."""
        return f"{self.command} (pid {self.pid})"

    def to_json(self) -> dict[str, Any]:
        """Plain dict with keys ``pid`` and ``command``."""
        return {"pid": self.pid, "command": self.command}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> WriterInfo:
        """Inverse of :meth:`to_json`."""
        return cls(pid=int(data["pid"]), command=str(data["command"]))


def describe_writers(writers: Iterable[WriterInfo]) -> str:
    """``postgres (pid 812) and bash (pid 9)``; empty string for no writers."""
    names = [w.describe() for w in writers]
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]


@dataclass(frozen=True)
class Attempt:
    """The facts of one attempt to read a file; judged later by :func:`classify.judge`.

    ``changed`` names the stat fields that differed between before and after the read
    (``size``, ``mtime``, ``ctime``, ``inode``, ``removed``). ``error`` is set when the
    file could not be opened or read; ``detail`` then carries the OS message.
    """

    number: int
    lease: LeaseState = LeaseState.NOT_TRIED
    lock: LockState = LockState.NOT_TRIED
    lease_break: BreakState = BreakState.NONE
    changed: tuple[str, ...] = ()
    writers: tuple[WriterInfo, ...] = ()
    error: Reason | None = None
    detail: str = ""
    bytes_read: int = 0
    started: float = 0.0
    duration: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """Plain dict (activity log, detailed log)."""
        return {
            "number": self.number,
            "lease": self.lease.value,
            "lock": self.lock.value,
            "lease_break": self.lease_break.value,
            "changed": list(self.changed),
            "writers": [w.to_json() for w in self.writers],
            "error": None if self.error is None else self.error.value,
            "detail": self.detail,
            "bytes_read": self.bytes_read,
            "started": self.started,
            "duration": self.duration,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Attempt:
        """Inverse of :meth:`to_json`."""
        error = data.get("error")
        return cls(
            number=int(data["number"]),
            lease=LeaseState(data.get("lease", LeaseState.NOT_TRIED.value)),
            lock=LockState(data.get("lock", LockState.NOT_TRIED.value)),
            lease_break=BreakState(data.get("lease_break", BreakState.NONE.value)),
            changed=tuple(str(c) for c in data.get("changed", ())),
            writers=tuple(WriterInfo.from_json(w) for w in data.get("writers", ())),
            error=None if error is None else Reason(error),
            detail=str(data.get("detail", "")),
            bytes_read=int(data.get("bytes_read", 0)),
            started=float(data.get("started", 0.0)),
            duration=float(data.get("duration", 0.0)),
        )


@dataclass(frozen=True)
class Retry:
    """Decision: try the file again ``after`` seconds; the next attempt is number ``number``."""

    after: float
    number: int
    reason: Reason


@dataclass(frozen=True)
class FileOutcome:
    """The final class of one file, with why, how many attempts, and who was writing.

    ``message`` is a human sentence such as ``open for writing by postgres (pid 812)``.
    """

    classification: Classification
    reason: Reason
    message: str
    attempts: int
    writers: tuple[WriterInfo, ...] = ()

    @classmethod
    def ok(
        cls, attempts: int = 1, reason: Reason = Reason.SNAPSHOT, message: str = "read from a snapshot"
    ) -> FileOutcome:
        """An ``ok`` outcome for an already-consistent source (volume snapshot, reflink clone)."""
        return cls(Classification.OK, reason, message, attempts, ())

    def to_json(self) -> dict[str, Any]:
        """Plain dict with the stable keys class, reason, message, attempts, writers."""
        return {
            "class": self.classification.value,
            "reason": self.reason.value,
            "message": self.message,
            "attempts": self.attempts,
            "writers": [w.to_json() for w in self.writers],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FileOutcome:
        """Inverse of :meth:`to_json`."""
        return cls(
            classification=Classification(data["class"]),
            reason=Reason(data["reason"]),
            message=str(data["message"]),
            attempts=int(data["attempts"]),
            writers=tuple(WriterInfo.from_json(w) for w in data.get("writers", ())),
        )
