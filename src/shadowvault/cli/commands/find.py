"""`shadowvault find PATTERN… [--snapshot ID]`: which snapshots hold matching files."""

from __future__ import annotations

import argparse
import stat
from datetime import datetime
from typing import Any

from shadowvault.engine.nodes import posix_permissions
from shadowvault.engine.select import list_snapshots, select_snapshot
from shadowvault.engine.treewalk import find
from shadowvault.repo import Node

from ..app import App
from ..selection import add_filter_options, snapshot_filter

HELP = "find files in snapshots by name or path pattern"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Patterns (exclude syntax) and which snapshots to search."""
    p.add_argument(
        "patterns", nargs="+", metavar="PATTERN", help="`*.conf` (any depth), `/etc/**` (anchored)"
    )
    p.add_argument(
        "-s",
        "--snapshot",
        dest="snapshots",
        action="append",
        default=[],
        metavar="ID",
        help="search only this snapshot (repeatable; default: every snapshot the filters allow)",
    )
    add_filter_options(p)


def _match_json(path: str, node: Node) -> dict[str, Any]:
    # restic's field names (find --json), so scripts written for restic read ours.
    return {
        "path": path,
        "permissions": stat.filemode(posix_permissions(node.mode)),
        "type": node.type,
        "mode": node.mode,
        "mtime": datetime.fromtimestamp(node.mtime / 1e9).astimezone().isoformat(),
        "uid": node.uid,
        "gid": node.gid,
        "user": node.user,
        "group": node.group,
        "size": node.size,
        "links": node.links,
    }


def run(app: App, args: argparse.Namespace) -> int:
    """One block per snapshot with hits, oldest first (restic's order)."""
    repo = app.open_repo()
    results: list[dict[str, Any]] = []
    try:
        repo.load_index()
        filt = snapshot_filter(args)
        if args.snapshots:
            chosen = [select_snapshot(repo, ref, filt) for ref in args.snapshots]
            snaps = [(s.id, s.snapshot) for s in chosen]
        else:
            snaps = list_snapshots(repo, filt)
        for sid, snap in snaps:
            hits = list(find(repo, snap.tree, args.patterns))
            if not hits:
                continue
            if app.json:
                results.append(
                    {"matches": [_match_json(p, n) for p, n in hits], "hits": len(hits), "snapshot": sid}
                )
                continue
            when = datetime.fromtimestamp(snap.time / 1e9).strftime("%Y-%m-%d %H:%M:%S")
            app.print(f"Found matching entries in snapshot {sid[:8]} from {when}")
            for path, _ in hits:
                app.print(path)
            app.print()
    finally:
        repo.close()
    if app.json:
        app.emit(results)
    return 0
