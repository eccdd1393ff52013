"""`shadowvault unlock [--remove-all]`: remove stale locks (or every lock)."""

from __future__ import annotations

import argparse

from shadowvault.repo import FileType

from ..app import App

HELP = "remove locks left by processes that no longer run"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """--remove-all also removes locks of running processes."""
    p.add_argument(
        "--remove-all", action="store_true", help="remove every lock, even of processes still running"
    )


def run(app: App, args: argparse.Namespace) -> int:
    """Stale locks: same host and dead pid, or not refreshed for 30 minutes (restic's rule)."""
    repo = app.open_repo()
    try:
        if args.remove_all:
            removed = [name for name, _ in repo.list_files(FileType.LOCK)]
            for name in removed:
                repo.remove_file(FileType.LOCK, name)
        else:
            removed = repo.remove_stale_locks()
    finally:
        repo.close()
    if app.json:
        app.emit({"message_type": "summary", "removed": removed})
    elif not app.quiet:
        app.print(f"removed {len(removed)} {'locks' if args.remove_all else 'stale locks'}")
    return 0
