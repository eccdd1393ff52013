"""`shadowvault check [--read-data]`: verify the repository's structure (and every blob's hash)."""

from __future__ import annotations

import argparse

from shadowvault.repo import check_repository
from shadowvault.repo.check import CheckProgress

from ..app import App
from ..progress import ProgressDisplay, Reading, polled

HELP = "check the repository for errors"
EXIT_CODES = {1: "problems were found (each on its own line), or the repository could not be read"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    """--read-data also decrypts and hashes every blob."""
    p.add_argument("--read-data", action="store_true", help="read and verify every blob")


def run(app: App, args: argparse.Namespace) -> int:
    """Exit 0 when no problem was found, 1 otherwise (each problem on one line)."""
    repo = app.open_repo()
    progress = CheckProgress()
    display = ProgressDisplay(app.err, unit="packs") if app.interactive and args.read_data else None

    def reading() -> Reading:
        done = (progress.packs_done, progress.bytes_done, 0, "")
        return (*done, (progress.packs_total, progress.bytes_total), progress.started)

    with repo.lock(exclusive=False), polled(display, reading):
        repo.load_index()
        problems = check_repository(repo, read_data=args.read_data, progress=progress)
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
        app.emit({"message_type": "summary", "problems": len(problems)})
    elif problems:
        app.print(f"{len(problems)} problems found")
    elif not app.quiet:
        app.print("no errors were found")
    return 1 if problems else 0
