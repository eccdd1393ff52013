"""`shadowvault cat config|snapshot ID|index ID|blob ID|tree ID`: raw JSON of repository objects."""

from __future__ import annotations

import argparse
import json
import sys

from shadowvault.errors import UsageError
from shadowvault.repo import BlobType, FileType

from ..app import App

HELP = "print a repository object (for debugging)"
_KINDS = ("config", "snapshot", "index", "blob", "tree", "key")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """KIND and, except for config, an ID (hex, a unique prefix for snapshots)."""
    p.add_argument("kind", choices=_KINDS)
    p.add_argument("id", nargs="?")


def run(app: App, args: argparse.Namespace) -> int:
    """Print the decrypted object: JSON for everything but data blobs, which go out as raw bytes."""
    repo = app.open_repo()
    if args.kind == "config":
        app.emit(repo.config)
        return 0
    if not args.id:
        raise UsageError(f"cat {args.kind} needs an ID")
    if args.kind == "snapshot":
        sid, _ = repo.find_snapshot(args.id)
        data = repo.load_file(FileType.SNAPSHOT, sid)
    elif args.kind == "index":
        data = repo.load_file(FileType.INDEX, args.id)
    elif args.kind == "key":
        data = repo.load_file(FileType.KEY, args.id)
    else:
        try:
            blob_id = bytes.fromhex(args.id)
        except ValueError:
            raise UsageError(f"{args.id!r} is not a hex blob id") from None
        repo.load_index()
        if args.kind == "tree":
            data = repo.load_blob(BlobType.TREE, blob_id)
        else:
            sys.stdout.buffer.write(repo.load_blob(BlobType.DATA, blob_id))
            return 0
    app.emit(json.loads(data))
    return 0
