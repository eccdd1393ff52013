"""`shadowvault ls SNAPSHOT [PATH] [--long]`: list a snapshot's contents, marking suspect files."""

from __future__ import annotations

import argparse
import os
import stat
from datetime import datetime

from shadowvault.engine.browse import walk
from shadowvault.engine.nodes import node_outcome, posix_permissions
from shadowvault.engine.select import select_snapshot
from shadowvault.errors import UsageError

from ..app import App
from ..selection import SNAPSHOT_HELP, add_filter_options, snapshot_filter

HELP = "list files in a snapshot"
_TYPE_CHAR = {"dir": "d", "symlink": "l", "fifo": "p", "dev": "b", "chardev": "c", "socket": "s", "file": "-"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Snapshot, optional directory inside it, --long."""
    p.add_argument("snapshot", help=SNAPSHOT_HELP)
    p.add_argument("path", nargs="?", default="/", help="only list below this path")
    p.add_argument("-l", "--long", action="store_true", help="mode, owner, size, time and outcome")
    add_filter_options(p)


def run(app: App, args: argparse.Namespace) -> int:
    """Print matching entries; suspect files are marked with their reason."""
    repo = app.open_repo()
    repo.load_index()
    selected = select_snapshot(repo, args.snapshot, snapshot_filter(args))
    path_arg = args.path if args.path != "/" else selected.subpath
    below = os.path.normpath("/" + path_arg.strip("/")) if path_arg != "/" else ""
    found = False
    for path, node in walk(repo, selected.snapshot.tree, ""):
        if below and not (path == below or path.startswith(below + "/")):
            continue
        found = True
        outcome = node_outcome(node)
        if app.json:
            app.emit(
                {
                    "path": path,
                    "type": node.type,
                    "size": node.size,
                    "mode": node.mode,
                    "mtime": node.mtime,
                    "uid": node.uid,
                    "gid": node.gid,
                    "outcome": outcome,
                }
            )
        elif args.long:
            perms = stat.filemode(posix_permissions(node.mode))[1:]
            when = datetime.fromtimestamp(node.mtime / 1e9).strftime("%Y-%m-%d %H:%M:%S")
            mark = ""
            if outcome:
                why = outcome.get("message") or outcome.get("reason")
                # ok files carry an outcome only when copied through SQLite: "[ok (sqlite online backup …)]"
                mark = (
                    f"  [ok ({why})]"
                    if outcome.get("class") == "ok"
                    else f"  [{outcome.get('class')}: {why}]"
                )
            app.print(
                f"{_TYPE_CHAR.get(node.type, '?')}{perms} {node.user or node.uid:>8} "
                f"{node.group or node.gid:>8} {node.size:>12} {when} {path}{mark}"
            )
        else:
            app.print(path)
    if below and not found:
        raise UsageError(f"{below} is not in snapshot {args.snapshot}")
    return 0
