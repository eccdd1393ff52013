"""A file's final outcome as it travels through the engine: typed values, JSON only at the edges.

Every stage hands on an :class:`Outcome` (built from an ``openfiles.FileOutcome``, a database
dump's result, a failure before any read, or a reuse of the parent's content); ``to_json`` is
called only where the outcome leaves the engine: the node's extra key, the snapshot's list of
outcomes, the activity log and ``--json`` output. Its keys are the stable ``class``, ``reason``,
``message``, ``attempts``, ``writers`` (and ``dump`` for a database dump).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shadowvault.openfiles import Classification, FileOutcome, Reason, WriterInfo

__all__ = ["DumpInfo", "FileRecord", "Outcome"]


@dataclass(frozen=True)
class DumpInfo:
    """What a database dump's outcome says about the dump (no credentials)."""

    type: str
    server: str  # host-port
    database: str
    size: int
    duration: float
    server_version: str
    set: str | None

    def to_json(self) -> dict[str, Any]:
        """The ``dump`` key of the outcome's JSON."""
        return {
            "type": self.type,
            "server": self.server,
            "database": self.database,
            "size": self.size,
            "duration": round(self.duration, 3),
            "server_version": self.server_version,
            "set": self.set,
        }


@dataclass(frozen=True)
class Outcome:
    """The final class of one entry of a backup, why, and who was writing."""

    classification: Classification
    reason: str | None = None  # None: content reused from the parent snapshot ({"class": "ok"})
    message: str | None = None  # None: no message key (a dump without one)
    attempts: int = 0
    writers: tuple[WriterInfo, ...] = ()
    dump: DumpInfo | None = None

    @classmethod
    def of_file(cls, o: FileOutcome) -> Outcome:
        """The outcome the open-file engine (or the SQLite capture) decided."""
        return cls(o.classification, o.reason.value, o.message, o.attempts, o.writers)

    @classmethod
    def reused(cls) -> Outcome:
        """A file whose content was taken from the parent snapshot (one shared frozen value: a
        no-change backup asks for it once per file)."""
        return _REUSED

    @classmethod
    def failed_early(cls, reason: str, message: str) -> Outcome:
        """A file or directory that failed before any read."""
        return cls(Classification.FAILED, reason, message, 0, ())

    @property
    def via_sqlite(self) -> bool:
        """A database copied through SQLite's online backup."""
        return self.reason == Reason.SQLITE_BACKUP.value

    @property
    def problem(self) -> bool:
        """Suspect or failed."""
        return self.classification is not Classification.OK

    def to_json(self) -> dict[str, Any]:
        """Plain dict for the snapshot, the node, the activity log and ``--json``."""
        data: dict[str, Any] = {"class": self.classification.value}
        if self.reason is None:
            return data
        data["reason"] = self.reason
        if self.message is not None:
            data["message"] = self.message
        data["attempts"] = self.attempts
        data["writers"] = [w.to_json() for w in self.writers]
        if self.dump is not None:
            data["dump"] = self.dump.to_json()
        return data


_REUSED = Outcome(Classification.OK)


@dataclass(frozen=True)
class FileRecord:
    """One path with its outcome, as listed in the snapshot and returned by the session."""

    path: str
    outcome: Outcome

    def to_json(self) -> dict[str, Any]:
        """``{"path": …, **outcome}``, the snapshot's list entry."""
        return {"path": self.path, **self.outcome.to_json()}
