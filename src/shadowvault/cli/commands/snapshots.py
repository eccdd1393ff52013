"""`shadowvault snapshots`: list snapshots, optionally filtered, grouped or cut to the latest."""

from __future__ import annotations

import argparse
from datetime import datetime
from typing import Any

from shadowvault import api
from shadowvault.errors import UsageError
from shadowvault.repo import Snapshot
from shadowvault.repo.policy import GroupKey, group_snapshots, parse_group_by

from ..app import App
from ..selection import add_filter_options, snapshot_filter

HELP = "list snapshots"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Filters: --host, --tag, --path, --set (each may be repeated); --group-by; --latest N."""
    add_filter_options(p)
    p.add_argument(
        "-g", "--group-by", default=None, help="group by host, paths and/or tags (comma-separated)"
    )
    p.add_argument(
        "--latest", type=int, default=0, metavar="N", help="only the newest N of each host and paths"
    )


def _doc(sid: str, s: Snapshot) -> dict[str, Any]:
    return {
        "id": sid,
        "short_id": sid[:8],
        "time": datetime.fromtimestamp(s.time / 1e9).astimezone().isoformat(),
        "hostname": s.hostname,
        "paths": s.paths,
        "tags": s.tags,
        "parent": s.parent,
        "shadowvault": s.extra.get("shadowvault", {}).get("summary"),
    }


def run(app: App, args: argparse.Namespace) -> int:
    """Print one line (or JSON object) per snapshot, oldest first; per group with --group-by."""
    if args.latest < 0:
        raise UsageError("--latest N needs N >= 0")
    try:
        group_by = parse_group_by(args.group_by) if args.group_by is not None else None
    except ValueError as exc:
        raise UsageError(f"--group-by: {exc}") from None
    repo = app.open_repo()
    rows = api.list_snapshots(repo, snapshot_filter(args))
    if args.latest:
        # restic's --latest: the newest N per host and paths (or per the chosen grouping).
        per = group_snapshots(rows, group_by if group_by is not None else frozenset({"host", "paths"}))
        newest = {sid for members in per.values() for sid, _ in members[-args.latest :]}
        rows = [(sid, s) for sid, s in rows if sid in newest]
    groups: list[tuple[GroupKey | None, list[tuple[str, Snapshot]]]] = [(None, rows)]
    if group_by is not None:
        grouped = group_snapshots(rows, group_by)
        groups = [
            (k, grouped[k]) for k in sorted(grouped, key=lambda k: (k.hostname, k.paths or (), k.tags or ()))
        ]
    if app.json:
        if group_by is None:
            app.emit([_doc(sid, s) for sid, s in rows])
        else:
            app.emit(
                [
                    {
                        "group_key": {
                            "hostname": k.hostname if k else "",
                            "paths": list(k.paths) if k and k.paths is not None else None,
                            "tags": list(k.tags) if k and k.tags is not None else None,
                        },
                        "snapshots": [_doc(sid, s) for sid, s in members],
                    }
                    for k, members in groups
                ]
            )
        return 0
    for key, members in groups:
        if key is not None:
            app.print(f"snapshots for {key.describe()}:")
        app.print(f"{'ID':<10} {'Time':<20} {'Host':<16} {'Tags':<16} Paths")
        for sid, s in members:
            when = datetime.fromtimestamp(s.time / 1e9).strftime("%Y-%m-%d %H:%M:%S")
            app.print(
                f"{sid[:8]:<10} {when:<20} {s.hostname:<16} {','.join(s.tags):<16} {', '.join(s.paths)}"
            )
        app.print(f"{len(members)} snapshots")
        if key is not None:
            app.print()
    return 0
