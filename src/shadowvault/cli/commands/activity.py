"""`shadowvault activity [--set NAME]`: the sessions recorded in the local activity log.

Each repository has its own log (named by the repository's id, so it follows the repository
wherever it is mounted); without a repository, the per-user log of earlier versions and of runs
that had none.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from shadowvault.engine.activity import ActivityLog, FileRecord, SessionRecord, log_path

from ..app import App, state_dir
from ..render import dump_line, human_bytes

HELP = "list backup sessions from the activity log"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Filters: --set, --limit."""
    p.add_argument("--set", dest="set_name", metavar="NAME", help="only sessions of this backup set")
    p.add_argument("--limit", type=int, default=None, help="only the newest N sessions")


def activity_log(app: App) -> Path:
    """The log of the repository this command names (or the default one, if it exists); the
    per-user log when there is none. Opening the repository reads its id (password needed)."""
    path, _, is_default = app.repo_location()
    if is_default and not (Path(path) / "config").exists():
        return log_path(state_dir(), None)
    repo = app.open_repo()
    try:
        return log_path(state_dir(), str(repo.config["id"]))
    finally:
        repo.close()


def session_json(r: SessionRecord) -> dict[str, Any]:
    """A session as a plain dict (also used by `report`)."""
    return {
        "id": r.id,
        "repository": r.repository,
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
    path = activity_log(app)
    dumps: dict[int, list[FileRecord]] = {}
    if not path.exists():
        records: list[SessionRecord] = []
    else:
        with ActivityLog(path) as log:
            records = log.sessions(args.set_name, limit=args.limit)
            dumps = {r.id: log.dumps(r.id) for r in records}
    if app.json:
        app.emit(
            [
                {**session_json(r), "dumps": [{"path": d.path, **d.detail} for d in dumps.get(r.id, [])]}
                for r in records
            ]
        )
        return 0
    app.print(
        f"{'ID':>5}  {'Repository':<10} {'Set':<14} {'Started':<19} {'Status':<12} "
        f"{'ok/suspect/failed':<18} {'Read':>10}  Snapshot"
    )
    for r in records:
        counts = f"{r.counts['ok']}/{r.counts['suspect']}/{r.counts['failed']}"
        started = r.started.astimezone().strftime("%Y-%m-%d %H:%M:%S")
        snap = (r.snapshot_id or "-")[:8]
        app.print(
            f"{r.id:>5}  {(r.repository or '-')[:8]:<10} {r.set_name or '-':<14} {started:<19} "
            f"{r.status:<12} {counts:<18} "
            f"{human_bytes(r.bytes_read):>10}  {snap}"
        )
        for d in dumps.get(r.id, []):
            app.print(f"       {d.classification:<8} {dump_line(d.path, d.detail.get('dump') or {})}")
    app.print(f"{len(records)} sessions in {path}")
    return 0
