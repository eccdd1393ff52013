"""`shadowvault check [--read-data]`: verify the repository's structure (and every blob's hash)."""

from __future__ import annotations

import argparse

from shadowvault.repo import check_repository
from shadowvault.repo.maintenance import unused_data

from ..app import App
from ..render import human_bytes

HELP = "check the repository for errors"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """--read-data also decrypts and hashes every blob."""
    p.add_argument("--read-data", action="store_true", help="read and verify every blob")


def run(app: App, args: argparse.Namespace) -> int:
    """Exit 0 when no problem was found, 1 otherwise (each problem on one line).

    Data no snapshot references (left by interrupted backups) is information, not an error:
    restic accepts it too, and ``prune`` removes it.
    """
    repo = app.open_repo()
    with repo.lock(exclusive=False):
        repo.load_index()
        found = check_repository(repo, read_data=args.read_data, include_hints=True)
        problems = [p for p in found if p.critical]
        unindexed = [p for p in found if not p.critical]
        unused = unused_data(repo) if not problems else (0, 0)
    for p in problems:
        if app.json:
            app.emit(
                {
                    "message_type": "problem",
                    "kind": p.kind,
                    "message": p.message,
                    "pack": p.pack_id,
                    "blob": p.blob_id,
                }
            )
        else:
            app.err.print(f"error: {p.message}", markup=False, style="red")
    if app.json:
        app.emit(
            {
                "message_type": "summary",
                "problems": len(problems),
                "unindexed_packs": len(unindexed),
                "unused_blobs": unused[0],
                "unused_bytes": unused[1],
            }
        )
        return 1 if problems else 0
    if unindexed:
        app.print(
            f"info: {len(unindexed)} packs are in no index (left by interrupted runs): `prune` removes them"
        )
    if unused[0]:
        app.print(
            f"info: {unused[0]} blobs ({human_bytes(unused[1])}) are referenced by no snapshot (interrupted "
            "backups or forgotten snapshots): `prune` gives the space back"
        )
    if problems:
        app.print(f"{len(problems)} problems found")
    else:
        app.print("no errors were found")
    return 1 if problems else 0
