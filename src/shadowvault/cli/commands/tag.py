"""`shadowvault tag [SNAPSHOT…] --add/--remove/--set TAG`: change the tags of snapshots."""

from __future__ import annotations

import argparse

from shadowvault.engine.select import list_snapshots, select_snapshot
from shadowvault.engine.snapshot_tags import retag

from ..app import App
from ..selection import add_filter_options, snapshot_filter

HELP = "add, remove or replace the tags of snapshots"


def _split(values: list[str]) -> list[str]:
    return [t for v in values for t in v.split(",") if t]


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Snapshots (default: every one the filters allow) and the change."""
    p.add_argument("snapshots", nargs="*", metavar="SNAPSHOT", help="ids, prefixes or 'latest'")
    p.add_argument("--add", action="append", default=[], metavar="TAG[,TAG]", help="add tags (repeatable)")
    p.add_argument(
        "--remove", action="append", default=[], metavar="TAG[,TAG]", help="remove tags (repeatable)"
    )
    p.add_argument(
        "--set",
        dest="set_tags",
        action="append",
        default=None,
        metavar="TAG[,TAG]",
        help="replace all tags (repeatable; --set '' removes them all)",
    )
    add_filter_options(p, set_filter=False)


def run(app: App, args: argparse.Namespace) -> int:
    """Rewrite each snapshot whose tags change; print how many did."""
    repo = app.open_repo()
    try:
        with repo.lock(exclusive=True):
            filt = snapshot_filter(args)
            if args.snapshots:
                chosen = [select_snapshot(repo, ref, filt) for ref in args.snapshots]
                snaps = [(s.id, s.snapshot) for s in chosen]
            else:
                snaps = list_snapshots(repo, filt)
            set_tags = _split(args.set_tags) if args.set_tags is not None else None
            changed = retag(repo, snaps, add=_split(args.add), remove=_split(args.remove), set_=set_tags)
    finally:
        repo.close()
    if app.json:
        app.emit({"message_type": "summary", "changed": [{"old": o, "new": n} for o, n in changed]})
    elif not app.quiet:
        for old, new in changed:
            app.print(f"snapshot {old[:8]} is now {new[:8]}")
        app.print(f"modified tags on {len(changed)} snapshots")
    return 0
