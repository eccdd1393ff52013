"""`shadowvault check [--read-data]`: verify the repository's structure (and every blob's hash)."""

from __future__ import annotations

import argparse

from shadowvault.engine.checks import record_check
from shadowvault.repo import check_repository, find_temp_files
from shadowvault.repo.check import CheckProgress
from shadowvault.repo.maintenance import unused_data

from ..app import App, state_dir
from ..progress import ProgressDisplay, Reading, polled
from ..render import human_bytes

HELP = "check the repository for errors"
EXIT_CODES = {1: "problems were found (each on its own line), or the repository could not be read"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    """--read-data also decrypts and hashes every blob."""
    p.add_argument("--read-data", action="store_true", help="read and verify every blob")


def run(app: App, args: argparse.Namespace) -> int:
    """Exit 0 when no problem was found, 1 otherwise (each problem on one line).

    Data no snapshot references (left by interrupted backups) and temporary files of interrupted
    writes are information, not errors: restic accepts them too, and ``prune`` removes them.
    """
    repo = app.open_repo()
    progress = CheckProgress()
    display = ProgressDisplay(app.err, unit="packs") if app.interactive and args.read_data else None

    def reading() -> Reading:
        done = (progress.packs_done, progress.bytes_done, 0, "")
        return (*done, (progress.packs_total, progress.bytes_total), progress.started)

    with repo.lock(exclusive=False, meanwhile=repo.load_index), polled(display, reading):
        found = check_repository(repo, read_data=args.read_data, include_hints=True, progress=progress)
        problems = [p for p in found if p.critical]
        unindexed = [p for p in found if not p.critical]
        unused = unused_data(repo) if not problems else (0, 0)
        leftovers = find_temp_files(repo)
    # Kept for `status`, which shows when the repository was last checked and with what result.
    try:
        record_check(
            state_dir() / "checks",
            str(repo.config.get("id", "")),
            read_data=args.read_data,
            messages=[p.message for p in problems],
        )
    except (OSError, ValueError) as e:
        app.warn(f"the result was not recorded for `status`: {e}")
    for t in leftovers:
        # Not an error: nothing reads them. The next backup that runs alone removes old ones.
        if app.json:
            app.emit({"message_type": "temp_file", "path": t.path, "size": t.size, "age": round(t.age)})
        else:
            app.info(
                f"info: temporary file {t.path} ({human_bytes(t.size)}, {t.age / 60:.0f} min old) "
                "left by an interrupted write; a backup with no other client running, or prune, removes it"
            )
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
    elif not app.quiet:
        app.print("no errors were found")
    return 1 if problems else 0
