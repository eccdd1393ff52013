"""Housekeeping a session does in the repository before its own work."""

from __future__ import annotations

from collections.abc import Callable

from .ports import BackupRepo

__all__ = ["tidy_temp_files"]


def tidy_temp_files(repo: BackupRepo, warn: Callable[[str], None]) -> None:
    """At the start of a session: remove temporary files of interrupted writes when no other
    client works in the repository (``repo.remove_stale_temp_files``), saying what was freed."""
    removed = repo.remove_stale_temp_files()
    if removed:
        size = sum(t.size for t in removed)
        warn(f"removed {len(removed)} temporary files ({size} bytes) left by interrupted writes")
