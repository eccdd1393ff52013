"""The status as plain JSON values (``status --json`` and the web page's ``/status.json``).

Kept beside the typed values so both front ends print the same document. Times are ISO 8601 in
UTC; paths are display text (undecodable bytes as ``\\xNN``) — the exact bytes are in the
activity log and the snapshot.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from .checks import CheckRecord
from .status import Flag, ProblemFile, RepositoryStatus, RunInfo, SetStatus, Status

__all__ = ["status_json"]


def _time(when: datetime | None) -> str | None:
    return when.isoformat() if when else None


def run_json(r: RunInfo | None) -> dict[str, Any] | None:
    """One run."""
    if r is None:
        return None
    return {
        "session_id": r.session_id,
        "started": _time(r.started),
        "ended": _time(r.ended),
        "duration": r.duration,
        "status": r.status,
        "exit_code": r.exit_code,
        "counts": {"ok": r.counts.ok, "suspect": r.counts.suspect, "failed": r.counts.failed},
        "bytes_read": r.bytes_read,
        "bytes_added": r.bytes_added,
        "snapshot_id": r.snapshot_id,
    }


def problem_json(p: ProblemFile) -> dict[str, Any]:
    """One suspect or failed file."""
    return {
        "path": p.path,
        "class": p.classification,
        "reason": p.reason,
        "message": p.message,
        "attempts": p.attempts,
        "writers": [{"pid": w.pid, "command": w.command} for w in p.writers],
    }


def _flag(f: Flag) -> dict[str, str]:
    return {"kind": f.kind, "message": f.message}


def set_json(s: SetStatus) -> dict[str, Any]:
    """One set."""
    return {
        "name": s.name,
        "schedule": s.schedule,
        "flagged": s.flagged,
        "flags": [_flag(f) for f in s.flags],
        "last_run": run_json(s.last_run),
        "last_success": run_json(s.last_success),
        "next_run": (
            {"at": _time(s.next_run.at), "window": s.next_run.window} if s.next_run is not None else None
        ),
        "problems": [problem_json(p) for p in s.problems],
    }


def _check(c: CheckRecord | None) -> dict[str, Any] | None:
    if c is None:
        return None
    return {
        "when": _time(c.when),
        "read_data": c.read_data,
        "ok": c.ok,
        "problems": c.problems,
        "messages": list(c.messages),
    }


def repository_json(r: RepositoryStatus) -> dict[str, Any]:
    """One repository."""
    return {
        "location": r.location,
        "id": r.repo_id,
        "snapshots": r.snapshots,
        "size_bytes": r.size_bytes,
        "pack_files": r.pack_files,
        "unreferenced_bytes": r.unreferenced_bytes,
        "last_check": _check(r.last_check),
    }


def status_json(status: Status) -> dict[str, Any]:
    """The whole status document."""
    return {
        "generated": _time(status.generated),
        "sets": [set_json(s) for s in status.sets],
        "repositories": [repository_json(r) for r in status.repositories],
    }
