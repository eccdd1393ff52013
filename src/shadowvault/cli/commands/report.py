"""`shadowvault report SESSION|SNAPSHOT`: the suspect and failed files of a session or snapshot.

A number is an activity-log session id (this machine only); hex digits or ``latest`` name a
snapshot, whose outcomes are read from the repository, so the report works on any machine.
"""

from __future__ import annotations

import argparse
from typing import Any

from shadowvault.engine.activity import ActivityLog
from shadowvault.engine.select import SnapshotFilter, select_snapshot
from shadowvault.errors import UsageError

from ..app import App
from ..render import dump_line
from ..selection import add_filter_options, snapshot_filter
from .activity import activity_log, session_json

HELP = "show the suspect and failed files of a session or snapshot"
_PROBLEMS = ("suspect", "failed")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The session id or snapshot, and --all."""
    p.add_argument(
        "target", metavar="SESSION|SNAPSHOT", help="session id (a number), snapshot id or 'latest'"
    )
    p.add_argument(
        "--all",
        action="store_true",
        help="also list ok files that were recorded (detailed log, known writers)",
    )
    add_filter_options(p)


def _row(path: str, data: dict[str, Any]) -> dict[str, Any]:
    attempts = data.get("attempts", 1)
    return {
        "path": path,
        "class": data.get("class"),
        "reason": data.get("reason"),
        "message": data.get("message"),
        "attempts": len(attempts) if isinstance(attempts, list) else attempts,
        "writers": list(data.get("writers") or []),
        "dump": data.get("dump"),  # database dumps: size, duration, server version
    }


def _shown(outcome: dict[str, Any]) -> bool:
    """Listed without --all: problems, databases copied through SQLite (with their writer), and
    database dumps whatever their class (size, duration, server version)."""
    return (
        outcome.get("class") in _PROBLEMS
        or outcome.get("reason") == "sqlite-online-backup"
        or "dump" in outcome
    )


def _from_session(app: App, sid: int, everything: bool) -> dict[str, Any]:
    path = activity_log(app)
    if not path.exists():
        raise UsageError(f"no activity log at {path}: no session has run on this machine yet")
    with ActivityLog(path) as log:
        record = log.session(sid)
        if record is None:
            raise UsageError(f"no session {sid} in the activity log {path}: see `shadowvault activity`")
        files = [
            f
            for f in log.files(sid, None)
            if everything or _shown({"class": f.classification, "reason": f.reason, **f.detail})
        ]
    return {
        "session": session_json(record),
        "snapshot_id": record.snapshot_id,
        "set": record.set_name,
        "summary": record.counts,
        "partial": record.status == "partial",
        "files": [_row(f.path, {**f.detail, "class": f.classification}) for f in files],
    }


def _from_snapshot(app: App, ref: str, everything: bool, filt: SnapshotFilter) -> dict[str, Any]:
    repo = app.open_repo()
    try:
        selected = select_snapshot(repo, ref, filt)
        sid, snap = selected.id, selected.snapshot
    finally:
        repo.close()
    extra = snap.extra.get("shadowvault") if isinstance(snap.extra, dict) else None
    if not isinstance(extra, dict):
        extra = {}
        app.warn(f"snapshot {sid[:8]} was not written by shadowvault: it records no file outcomes")
    outcomes = [o for o in extra.get("outcomes", []) if everything or _shown(o)]
    return {
        "session": None,
        "snapshot_id": sid,
        "set": extra.get("set"),
        "summary": extra.get("summary"),
        "partial": bool(extra.get("partial", False)),
        "files": [_row(str(o.get("path")), o) for o in outcomes],
    }


def _writers(row: dict[str, Any]) -> str:
    return ", ".join(f"{w.get('command')} (pid {w.get('pid')})" for w in row["writers"]) or "-"


def run(app: App, args: argparse.Namespace) -> int:
    """Print a table of problem files and a summary line (or one JSON document)."""
    target: str = args.target
    if target.isdigit():
        try:
            report = _from_session(app, int(target), args.all)
        except UsageError:
            # A snapshot id prefix can be all digits too ("9157301631"): try that before giving up.
            if len(target) < 4:
                raise
            report = _from_snapshot(app, target, args.all, snapshot_filter(args))
    elif target != "latest" and not all(c in "0123456789abcdefABCDEF" for c in target):
        raise UsageError(f"{target!r} is neither a session number nor a snapshot id (hex digits or 'latest')")
    else:
        report = _from_snapshot(app, target, args.all, snapshot_filter(args))
    if app.json:
        app.emit(report)
        return 0
    files = [f for f in report["files"] if f["class"] in _PROBLEMS or not f["dump"]]
    if files:
        width = min(max(len(f["path"]) for f in files), 60)
        app.print(f"{'Class':<8} {'Path':<{width}} {'Attempts':>8}  {'Writer':<24} Reason")
        for f in files:
            why = f["message"] or f["reason"] or ""
            app.print(f"{f['class']:<8} {f['path']:<{width}} {f['attempts']:>8}  {_writers(f):<24} {why}")
    dumps = [f for f in report["files"] if f["dump"]]
    if dumps:
        app.print("Database dumps:")
        for f in dumps:
            app.print(f"  {f['class']:<8} {dump_line(f['path'], f['dump'])}")
    counts = report["summary"] or {}
    session = f"session {report['session']['id']}, " if report["session"] else ""
    snap = (report["snapshot_id"] or "none")[:8]
    partial = ", partial (stopped early)" if report["partial"] else ""
    app.print(
        f"{session}snapshot {snap}, set {report['set'] or '-'}: {counts.get('ok', 0)} ok, "
        f"{counts.get('suspect', 0)} suspect, {counts.get('failed', 0)} failed{partial}"
    )
    return 0
