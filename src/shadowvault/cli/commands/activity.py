"""`shadowvault activity [--set NAME]`: the sessions recorded in the local activity log."""

from __future__ import annotations

import argparse
from typing import Any

from shadowvault.engine.activity import ActivityLog, SessionRecord

from ..app import App, state_dir
from ..render import human_bytes

REPOSITORY = False
"""Never opens a repository: --repo and the password options are not offered."""
HELP = "list backup sessions from the activity log"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Filters: --set, --limit."""
    p.add_argument("--set", dest="set_name", metavar="NAME", help="only sessions of this backup set")
    p.add_argument("--limit", type=int, default=None, help="only the newest N sessions")


def session_json(r: SessionRecord) -> dict[str, Any]:
    """A session as a plain dict (also used by `report`)."""
    return {
        "id": r.id,
        "set": r.set_name,
        "host": r.host,
        "pid": r.pid,
        "started": r.started.isoformat(),
        "ended": r.ended.isoformat() if r.ended else None,
        "status": r.status,
        "bytes_read": r.bytes_read,
        "bytes_added": r.bytes_added,
        "counts": r.counts,
        "snapshot_id": r.snapshot_id,
        "exit_code": r.exit_code,
        "warnings": r.warnings,
    }


def run(app: App, args: argparse.Namespace) -> int:
    """Newest first: id, set, start, status, counts per class, snapshot, exit code."""
    path = state_dir() / "activity.db"
    if not path.exists():
        records: list[SessionRecord] = []
    else:
        with ActivityLog(path) as log:
            records = log.sessions(args.set_name, limit=args.limit)
    if app.json:
        app.emit([session_json(r) for r in records])
        return 0
    app.print(
        f"{'ID':>5}  {'Set':<14} {'Started':<19} {'Status':<12} "
        f"{'ok/suspect/failed':<18} {'Read':>10}  Snapshot"
    )
    for r in records:
        counts = f"{r.counts['ok']}/{r.counts['suspect']}/{r.counts['failed']}"
        started = r.started.astimezone().strftime("%Y-%m-%d %H:%M:%S")
        snap = (r.snapshot_id or "-")[:8]
        app.print(
            f"{r.id:>5}  {r.set_name or '-':<14} {started:<19} {r.status:<12} {counts:<18} "
            f"{human_bytes(r.bytes_read):>10}  {snap}"
        )
    app.print(f"{len(records)} sessions in {path}")
    return 0
