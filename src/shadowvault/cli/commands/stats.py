"""`shadowvault stats [SNAPSHOT…] [--mode restore-size|raw-data]`: sizes as restic counts them."""

from __future__ import annotations

import argparse
import dataclasses

from shadowvault.engine.select import list_snapshots, select_snapshot
from shadowvault.engine.stats import MODES, raw_data, restore_size

from ..app import App
from ..render import human_bytes
from ..selection import add_filter_options, snapshot_filter

HELP = "show how big snapshots are (restore size, or stored data)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Snapshots (default: all the filters allow) and --mode."""
    p.add_argument("snapshots", nargs="*", metavar="SNAPSHOT", help="'latest', ids or prefixes")
    p.add_argument("--mode", choices=MODES, default=MODES[0], help="what to count (default: %(default)s)")
    add_filter_options(p)


def run(app: App, args: argparse.Namespace) -> int:
    """Print the totals; --json uses restic's field names (total_size, total_file_count, …)."""
    repo = app.open_repo()
    try:
        repo.load_index()
        filt = snapshot_filter(args)
        if args.snapshots:
            snaps = [select_snapshot(repo, ref, filt).snapshot for ref in args.snapshots]
        else:
            snaps = [s for _, s in list_snapshots(repo, filt)]
        stats = restore_size(repo, snaps) if args.mode == "restore-size" else raw_data(repo, snaps)
    finally:
        repo.close()
    if app.json:
        doc = dataclasses.asdict(stats)
        del doc["mode"]
        if args.mode == "restore-size":
            del doc["total_blob_count"], doc["total_uncompressed_size"]
        app.emit(doc)
        return 0
    app.print(f"Stats in {stats.mode} mode:")
    app.print(f"Snapshots processed: {stats.snapshots_count:>8}")
    if args.mode == "restore-size":
        app.print(f"   Total File Count: {stats.total_file_count:>8}")
    else:
        app.print(f"   Total Blob Count: {stats.total_blob_count:>8}")
        app.print(f"  Uncompressed Size: {human_bytes(stats.total_uncompressed_size):>12}")
    app.print(f"         Total Size: {human_bytes(stats.total_size):>12}")
    return 0
