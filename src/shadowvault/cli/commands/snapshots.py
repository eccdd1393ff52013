"""`shadowvault snapshots`: list snapshots, optionally filtered by host, tag or path."""

from __future__ import annotations

import argparse
import os
from datetime import datetime

from ..app import App

HELP = "list snapshots"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Filters: --host, --tag, --path (each may be repeated)."""
    p.add_argument("--host", action="append", default=[], help="only snapshots of this host")
    p.add_argument("--tag", action="append", default=[], help="only snapshots with this tag")
    p.add_argument("--path", action="append", default=[], help="only snapshots that include this path")


def run(app: App, args: argparse.Namespace) -> int:
    """Print one line (or JSON object) per snapshot, oldest first."""
    repo = app.open_repo()
    paths = {os.path.normpath(os.path.abspath(p)) for p in args.path}
    rows = []
    for sid, snap in repo.list_snapshots():
        if args.host and snap.hostname not in args.host:
            continue
        if args.tag and not set(args.tag) <= set(snap.tags):
            continue
        if paths and not paths <= set(snap.paths):
            continue
        rows.append((sid, snap))
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
