"""What the activity log gives back: sessions and file rows as read (``engine.activity``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

__all__ = ["FileRecord", "SessionRecord", "SessionStatus"]

# "partial": a snapshot was written but the set stopped early (stop_on_errors, stop_at).
# "missed": a scheduled run that could not start inside its window (nothing was read).
SessionStatus = Literal["running", "completed", "partial", "failed", "interrupted", "missed"]


@dataclass(frozen=True)
class SessionRecord:
    """One session as listed (``status`` already says "interrupted" for dead running ones)."""

    id: int
    set_name: str | None
    host: str
    pid: int
    started: datetime
    ended: datetime | None
    status: SessionStatus
    bytes_read: int
    bytes_added: int
    counts: dict[str, int]
    snapshot_id: str | None
    exit_code: int | None
    warnings: list[str] = field(default_factory=list)
    repository: str | None = None


@dataclass(frozen=True)
class FileRecord:
    """One file recorded in a session. ``path`` is for display; ``path_bytes`` is exact."""

    session_id: int
    path: str
    path_bytes: bytes
    classification: str
    reason: str | None
    message: str | None
    attempts: int
    writers: list[Any]
    detail: dict[str, Any]
    recorded: datetime
