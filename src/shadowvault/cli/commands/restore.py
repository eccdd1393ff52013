"""`shadowvault restore SNAPSHOT[:PATH] --target DIR`: restore files with their metadata."""

from __future__ import annotations

import argparse
from contextlib import AbstractContextManager

from shadowvault import api
from shadowvault.engine.restore import OVERWRITE_MODES, RestoreOptions, RestoreSession
from shadowvault.errors import UsageError

from ..app import App
from ..dbrestore import add_database_arguments, run_database
from ..progress import ProgressDisplay, Reading, polled
from ..render import human_bytes
from ..selection import SNAPSHOT_HELP, add_filter_options, snapshot_filter

HELP = "restore a snapshot"
EXIT_CODES = {3: "some entries could not be restored, or differing files were not overwritten"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Snapshot, target and selection."""
    p.add_argument("snapshot", help=SNAPSHOT_HELP)
    p.add_argument("-t", "--target", help="directory to restore into")
    p.add_argument("--include", action="append", default=[], help="restore only paths matching this glob")
    p.add_argument("--exclude", action="append", default=[], help="do not restore paths matching this glob")
    p.add_argument(
        "--overwrite",
        default="never",
        choices=OVERWRITE_MODES,
        metavar="MODE",
        help="existing files that differ from the snapshot: never (default: kept, exit 3), "
        "if-changed (replaced), always (every existing file rewritten)",
    )
    p.add_argument(
        "--verify",
        action="store_true",
        help="decide whether an existing file is unchanged by its content, not size and mtime",
    )
    p.add_argument("--delete", action="store_true", help="remove files in the target the snapshot lacks")
    p.add_argument("--dry-run", action="store_true", help="only say what would be restored")
    p.add_argument(
        "--keep-going",
        action="store_true",
        help="when the target fills up, go on restoring what fits (default: stop at once)",
    )
    group = p.add_mutually_exclusive_group()
    group.add_argument("--skip-suspect", action="store_true", help="leave out files backed up as suspect")
    group.add_argument("--only-suspect", action="store_true", help="restore only files backed up as suspect")
    add_filter_options(p)
    add_database_arguments(p)


def run(app: App, args: argparse.Namespace) -> int:
    """Restore; exit 3 if some entries could not be restored or differing files were kept."""
    if args.database:
        return run_database(app, args)
    if not args.target:
        raise UsageError(
            "restore needs --target DIR (or --database NAME to load a stored dump into its server)"
        )
    repo = app.open_repo()
    options = RestoreOptions(
        target=args.target,
        include=args.include,
        exclude=args.exclude,
        overwrite=args.overwrite,
        verify=args.verify,
        delete=args.delete,
        dry_run=args.dry_run,
        skip_suspect=args.skip_suspect,
        only_suspect=args.only_suspect,
        keep_going=args.keep_going,
    )
    display = ProgressDisplay(app.err) if app.interactive and not args.dry_run else None

    def watch(session: RestoreSession) -> AbstractContextManager[object]:
        def reading() -> Reading:
            totals = (session.result.files, session.result.bytes)
            done = (session.files_written, session.bytes_written, session.result.errors)
            return (*done, "", totals, session.planned)

        return polled(display, reading)

    done = api.restore(
        repo,
        args.snapshot,
        options,
        lambda e: app.warn(getattr(e, "message", str(e))),
        where=snapshot_filter(args),
        watch=watch,
    )
    repo.close()
    result = done.result
    if app.json:
        app.emit(
            {
                "message_type": "summary",
                "snapshot_id": done.snapshot_id,
                "dry_run": args.dry_run,
                "files_restored": result.files,
                "dirs": result.dirs,
                "other": result.other,
                "bytes": result.bytes,
                "unchanged": result.unchanged,
                "overwritten": result.overwritten,
                "deleted": result.deleted,
                "skipped_existing": result.skipped_existing,
                "skipped_suspect": result.skipped_suspect,
                "errors": result.errors,
                "suspect_restored": result.suspect_restored,
            }
        )
    elif not app.quiet:
        verb = "would restore" if args.dry_run else "restored"
        app.print(
            f"{verb} {result.files} files ({human_bytes(result.bytes)}), {result.dirs} directories, "
            f"{result.other} other entries from snapshot {done.snapshot_id[:8]} to {args.target}"
        )
        if result.unchanged:
            app.print(f"{result.unchanged} existing entries already matched the snapshot")
        if result.overwritten:
            app.print(f"{result.overwritten} existing entries {'would be ' if args.dry_run else ''}replaced")
        if result.deleted:
            app.print(
                f"{result.deleted} entries not in the snapshot {'would be ' if args.dry_run else ''}deleted"
            )
        for path in result.suspect_restored:
            app.print(f"note: {path} was backed up as suspect (potential integrity problems)")
        if result.skipped_existing:
            app.print(
                f"{result.skipped_existing} existing files differ and were not overwritten "
                "(use --overwrite if-changed)"
            )
        if result.skipped_suspect:
            app.print(f"{result.skipped_suspect} suspect files were skipped")
        if result.errors:
            app.print(f"{result.errors} entries could not be restored")
    return result.exit_code
