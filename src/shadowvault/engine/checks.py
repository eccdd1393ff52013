"""The last ``check`` of each repository, kept so ``status`` can say when it ran and what it found.

One small JSON file per repository (named by the repository's config id) under a directory the
caller chooses (the CLI uses ``user_state_dir/checks``). Each check replaces the file atomically
(temp file + rename), so a reader never sees half a record. Kept apart from the activity log on
purpose: a check is not a backup session, and this stays valid whatever shape that log takes.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

__all__ = ["CheckRecord", "last_check", "record_check"]


@dataclass(frozen=True)
class CheckRecord:
    """When a repository was last checked, how thoroughly, and how many problems were found."""

    when: datetime
    read_data: bool
    problems: int
    messages: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """True when the check found nothing wrong."""
        return self.problems == 0


def _file(directory: Path, repo_id: str) -> Path:
    # The id is hex from the repository's config; anything else cannot become a path component.
    if not repo_id or any(c not in "0123456789abcdef" for c in repo_id.lower()):
        raise ValueError(f"{repo_id!r} is not a repository id")
    return directory / f"{repo_id.lower()}.json"


def record_check(
    directory: Path, repo_id: str, *, read_data: bool, messages: list[str], when: datetime | None = None
) -> CheckRecord:
    """Store the result of a check of repository ``repo_id``; returns the record written."""
    record = CheckRecord(
        when=when or datetime.now(UTC),
        read_data=read_data,
        problems=len(messages),
        # The first few are enough to say what is wrong; the check itself printed them all.
        messages=tuple(messages[:20]),
    )
    directory.mkdir(parents=True, exist_ok=True)
    target = _file(directory, repo_id)
    data = {
        "when": record.when.timestamp(),
        "read_data": record.read_data,
        "problems": record.problems,
        "messages": list(record.messages),
    }
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".check-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return record


def last_check(directory: Path, repo_id: str) -> CheckRecord | None:
    """The stored result of the last check of ``repo_id``, or None (never checked, or unreadable)."""
    try:
        data = json.loads(_file(directory, repo_id).read_text(encoding="utf-8"))
        return CheckRecord(
            when=datetime.fromtimestamp(float(data["when"]), UTC),
            read_data=bool(data["read_data"]),
            problems=int(data["problems"]),
            messages=tuple(str(m) for m in data.get("messages", [])),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
