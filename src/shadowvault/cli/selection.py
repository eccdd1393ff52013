"""The snapshot-selection options shared by every command that reads a snapshot.

restic's ``--host``, ``--path`` and ``--tag`` plus ``--set``; the meaning of each lives in
``engine.select`` (one engine function), this module only declares the flags.
"""

from __future__ import annotations

import argparse

from shadowvault.engine.select import SnapshotFilter

SNAPSHOT_HELP = "'latest', a snapshot id or unique prefix; ID:/path names a directory inside it"


def add_filter_options(p: argparse.ArgumentParser, *, set_filter: bool = True) -> None:
    """--host, --path, --tag, --set (each repeatable), grouped in the help; ``set_filter=False``
    for a command whose own --set means something else (tag)."""
    g = p.add_argument_group("snapshot filters (which snapshot 'latest' is)")
    g.add_argument(
        "--host",
        dest="f_hosts",
        action="append",
        default=[],
        metavar="HOST",
        help="only snapshots of this host (repeatable)",
    )
    g.add_argument(
        "--path",
        dest="f_paths",
        action="append",
        default=[],
        metavar="PATH",
        help="only snapshots that include this path (repeatable: all of them)",
    )
    g.add_argument(
        "--tag",
        dest="f_tags",
        action="append",
        default=[],
        metavar="TAG[,TAG]",
        help="only snapshots with these tags (repeatable: any of the lists)",
    )
    if set_filter:
        g.add_argument(
            "--set",
            dest="f_sets",
            action="append",
            default=[],
            metavar="NAME",
            help="only snapshots written by this backup set (repeatable)",
        )


def snapshot_filter(args: argparse.Namespace) -> SnapshotFilter:
    """The filter the command line asked for."""
    return SnapshotFilter.from_lists(args.f_hosts, args.f_paths, args.f_tags, getattr(args, "f_sets", []))
