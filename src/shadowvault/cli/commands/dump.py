"""`shadowvault dump SNAPSHOT PATH`: a file to stdout, a directory as a tar stream."""

from __future__ import annotations

import argparse
import sys

from shadowvault.engine.dump import write_file, write_tar
from shadowvault.engine.select import find_node, select_snapshot
from shadowvault.errors import UsageError

from ..app import App
from ..selection import SNAPSHOT_HELP, add_filter_options, snapshot_filter

HELP = "write a file of a snapshot to stdout (a directory as a tar archive)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Snapshot and the path inside it."""
    p.add_argument("snapshot", help=SNAPSHOT_HELP)
    p.add_argument("path", help="file or directory inside the snapshot (/ for all of it)")
    add_filter_options(p)


def run(app: App, args: argparse.Namespace) -> int:
    """Stream the content; nothing but the data goes to stdout."""
    if sys.stdout.isatty():
        raise UsageError("dump writes binary data: redirect stdout to a file or a pipe")
    repo = app.open_repo()
    try:
        repo.load_index()
        selected = select_snapshot(repo, args.snapshot, snapshot_filter(args))
        path = "/" + args.path.strip("/")
        if path == "/":
            write_tar(repo, selected.snapshot.tree, "/", sys.stdout.buffer)
            return 0
        node = find_node(repo, selected.snapshot.tree, path)
        if node is None:
            raise UsageError(f"{path} is not in snapshot {selected.id[:8]}: see `ls {selected.id[:8]}`")
        if node.type == "dir":
            write_tar(repo, node.subtree, path, sys.stdout.buffer)
        elif node.type == "file":
            write_file(repo, node, sys.stdout.buffer)
        else:
            raise UsageError(f"{path} is a {node.type}: dump writes files and directories")
        sys.stdout.buffer.flush()
    finally:
        repo.close()
    return 0
