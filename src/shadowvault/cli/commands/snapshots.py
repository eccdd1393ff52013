"""`shadowvault snapshots`: list snapshots, optionally filtered by host, tag or path."""

from __future__ import annotations

import argparse
from datetime import datetime

from shadowvault.engine.select import list_snapshots

from ..app import App
from ..selection import add_filter_options, snapshot_filter

HELP = "list snapshots"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Filters: --host, --tag, --path, --set (each may be repeated)."""
    add_filter_options(p)


def run(app: App, args: argparse.Namespace) -> int:
    """Print one line (or JSON object) per snapshot, oldest first."""
    repo = app.open_repo()
    rows = list_snapshots(repo, snapshot_filter(args))
    if app.json:
        app.emit(
            [
                {
                    "id": sid,
                    "short_id": sid[:8],
                    "time": datetime.fromtimestamp(s.time / 1e9).astimezone().isoformat(),
                    "hostname": s.hostname,
                    "paths": s.paths,
                    "tags": s.tags,
                    "parent": s.parent,
                    "shadowvault": s.extra.get("shadowvault", {}).get("summary"),
                }
                for sid, s in rows
            ]
        )
        return 0
    app.print(f"{'ID':<10} {'Time':<20} {'Host':<16} {'Tags':<16} Paths")
    for sid, s in rows:
        when = datetime.fromtimestamp(s.time / 1e9).strftime("%Y-%m-%d %H:%M:%S")
        app.print(f"{sid[:8]:<10} {when:<20} {s.hostname:<16} {','.join(s.tags):<16} {', '.join(s.paths)}")
    app.print(f"{len(rows)} snapshots")
    return 0
