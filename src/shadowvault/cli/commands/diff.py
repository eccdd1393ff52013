"""`shadowvault diff A B`: what changed between two snapshots (restic's format)."""

from __future__ import annotations

import argparse

from shadowvault.engine.select import select_snapshot, subtree
from shadowvault.engine.treewalk import diff_trees

from ..app import App
from ..selection import SNAPSHOT_HELP, add_filter_options, snapshot_filter

HELP = "show the differences between two snapshots"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Two snapshots and --metadata."""
    p.add_argument("first", metavar="SNAPSHOT-A", help=SNAPSHOT_HELP)
    p.add_argument("second", metavar="SNAPSHOT-B", help=SNAPSHOT_HELP)
    p.add_argument("--metadata", action="store_true", help="also list metadata-only changes (U)")
    add_filter_options(p)


def run(app: App, args: argparse.Namespace) -> int:
    """`+` added, `-` removed, `T` type changed, `M` content changed, `U` metadata changed."""
    repo = app.open_repo()
    try:
        repo.load_index()
        filt = snapshot_filter(args)
        a = select_snapshot(repo, args.first, filt)
        b = select_snapshot(repo, args.second, filt)
        counts = diff_trees(repo, subtree(repo, a), subtree(repo, b), metadata=args.metadata)
    finally:
        repo.close()
    if app.json:
        for c in counts.changes:
            app.emit({"message_type": "change", "path": c.path, "modifier": c.modifier})
        app.emit(
            {
                "message_type": "statistics",
                "source_snapshot": a.id,
                "target_snapshot": b.id,
                "changed_files": counts.files_changed,
                "added": {
                    "files": counts.files_added,
                    "dirs": counts.dirs_added,
                    "others": counts.others_added,
                },
                "removed": {
                    "files": counts.files_removed,
                    "dirs": counts.dirs_removed,
                    "others": counts.others_removed,
                },
            }
        )
        return 0
    app.print(f"comparing snapshot {a.id[:8]} to {b.id[:8]}:")
    app.print()
    for c in counts.changes:
        app.print(f"{c.modifier:<5}{c.path}")
    app.print()
    app.print(
        f"Files:       {counts.files_added:>5} new, {counts.files_removed:>5} removed, "
        f"{counts.files_changed:>5} changed"
    )
    app.print(f"Dirs:        {counts.dirs_added:>5} new, {counts.dirs_removed:>5} removed")
    app.print(f"Others:      {counts.others_added:>5} new, {counts.others_removed:>5} removed")
    return 0
