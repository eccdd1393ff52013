"""Events a session emits, and the sink protocol the CLI (or any caller) implements.

Sessions never print: they hand events to an injected ``EventSink`` (restic's
``ui`` interfaces, hatch's single output path). The CLI renders them as a
progress display or as JSON lines; tests collect them in a list.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from .outcomes import Outcome


@dataclass(frozen=True)
class Event:
    """Base class: every event has a machine name used as the JSON ``message_type``."""

    kind: str = field(init=False, default="event")

    def to_json(self) -> dict[str, Any]:
        """Plain dict for ``--json`` output."""
        data = {k: v for k, v in self.__dict__.items() if k != "kind"}
        return {"message_type": self.kind, **data}


@dataclass(frozen=True)
class Warning_(Event):
    """Something the user should know that does not change a file's outcome."""

    message: str
    kind: str = field(init=False, default="warning")


@dataclass(frozen=True)
class FileStarted(Event):
    """A file is about to be read (attempt ``attempt``)."""

    path: str
    size: int
    attempt: int
    kind: str = field(init=False, default="file_started")


@dataclass(frozen=True)
class FileDone(Event):
    """A file reached its final outcome (JSON: ``outcome.to_json()``)."""

    path: str
    size: int
    outcome: Outcome
    reused: bool
    in_parent: bool = False
    """The parent snapshot had this path (restic -v: "modified" rather than "new")."""
    kind: str = field(init=False, default="file_done")

    def to_json(self) -> dict[str, Any]:
        """Plain dict for ``--json`` output, the outcome as its JSON."""
        return {**super().to_json(), "outcome": self.outcome.to_json()}


@dataclass(frozen=True)
class FilesUnchanged(Event):
    """Files whose content was taken from the parent snapshot (class ok, nothing read), in walk order.

    They are reported together, up to a thousand at a time, not as one ``FileDone`` each: a
    no-change backup of 200,000 files spent ~0.35 s of its time making and passing on per-file
    events (issue 10). A batch is always sent before any other event that follows its files, so
    the order of events is the walk's. ``paths`` are the paths as walked (bytes, ``os.fsdecode``
    gives the text a ``FileDone`` would carry); ``sizes[i]`` is the size of ``paths[i]``.
    """

    paths: list[bytes]
    sizes: list[int]
    kind: str = field(init=False, default="files_unchanged")

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def total_size(self) -> int:
        """The files' total size."""
        return sum(self.sizes)

    def files(self) -> Iterator[tuple[str, int]]:
        """(path as text, size) of every file, in walk order."""
        decode = os.fsdecode
        for path, size in zip(self.paths, self.sizes, strict=True):
            yield decode(path), size

    def to_json(self) -> dict[str, Any]:
        """Counts only (``-vv`` lists the files as restic's ``verbose_status`` lines)."""
        return {"message_type": self.kind, "files": len(self.paths), "bytes": self.total_size}


@dataclass(frozen=True)
class SubtreeUnchanged(Event):
    """A directory taken whole from the parent snapshot (``engine.prescan``): its ``files`` files of
    ``size`` bytes in all are class ok, none was read, and they are not named one by one (a session
    that must name them, ``BackupOptions.unchanged_by_name``, walks the directory instead)."""

    path: bytes
    files: int
    size: int
    kind: str = field(init=False, default="subtree_unchanged")

    def __len__(self) -> int:
        return self.files

    @property
    def total_size(self) -> int:
        """The files' total size."""
        return self.size

    def to_json(self) -> dict[str, Any]:
        """The directory as text, with the counts."""
        return {
            "message_type": self.kind,
            "path": os.fsdecode(self.path),
            "files": self.files,
            "bytes": self.size,
        }


@dataclass(frozen=True)
class FileRetryScheduled(Event):
    """A file's attempt failed and it will be tried again after ``delay`` seconds."""

    path: str
    attempt: int
    delay: float
    reason: str
    kind: str = field(init=False, default="file_retry")


@dataclass(frozen=True)
class Progress(Event):
    """Periodic counters for a progress display."""

    files_done: int
    bytes_done: int
    bytes_total: int
    current: str
    kind: str = field(init=False, default="status")


@dataclass(frozen=True)
class SessionSummary(Event):
    """End of a backup session: counts per class and the exit code."""

    snapshot_id: str | None
    files_ok: int
    files_suspect: int
    files_failed: int
    files_unchanged: int
    files_read: int
    bytes_read: int
    data_blobs_added: int
    bytes_added: int
    data_packs_written: int
    duration: float
    exit_code: int
    partial: bool = False
    kind: str = field(init=False, default="summary")


class EventSink(Protocol):
    """Receives every event of a session, in order."""

    def __call__(self, event: Event) -> None:
        """Handle one event."""


class ListSink:
    """An ``EventSink`` that keeps every event (tests, and callers that want the log)."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)
