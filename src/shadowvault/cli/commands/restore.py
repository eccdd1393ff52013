"""`shadowvault restore SNAPSHOT --target DIR`: restore files with their metadata."""

from __future__ import annotations

import argparse

from shadowvault.engine.restore import RestoreOptions, RestoreSession

from ..app import App

HELP = "restore a snapshot"
EXIT_CODES = {3: "some entries could not be restored, or differing files were not overwritten"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Snapshot, target and selection."""
    p.add_argument("snapshot", help="snapshot id, unique prefix, or 'latest'")
    p.add_argument("-t", "--target", required=True, help="directory to restore into")
    p.add_argument("--include", action="append", default=[], help="restore only paths matching this glob")
    p.add_argument("--exclude", action="append", default=[], help="do not restore paths matching this glob")
    p.add_argument("--overwrite", action="store_true", help="replace files that already exist in the target")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--skip-suspect", action="store_true", help="leave out files backed up as suspect")
    group.add_argument("--only-suspect", action="store_true", help="restore only files backed up as suspect")


def run(app: App, args: argparse.Namespace) -> int:
    """Restore; exit 3 if some entries could not be restored or already existed."""
    repo = app.open_repo()
    options = RestoreOptions(
        target=args.target,
        include=args.include,
        exclude=args.exclude,
        overwrite=args.overwrite,
        skip_suspect=args.skip_suspect,
        only_suspect=args.only_suspect,
    )
    with repo.lock(exclusive=False):
        repo.load_index()
        session = RestoreSession(repo, options, lambda e: app.warn(getattr(e, "message", str(e))))
        result = session.run(args.snapshot)
    repo.close()
    if app.json:
        app.emit(
            {
                "message_type": "summary",
                "files_restored": result.files,
                "dirs": result.dirs,
                "other": result.other,
                "bytes": result.bytes,
                "skipped_existing": result.skipped_existing,
                "skipped_suspect": result.skipped_suspect,
                "errors": result.errors,
                "suspect_restored": result.suspect_restored,
            }
        )
    else:
        app.print(
            f"restored {result.files} files, {result.dirs} directories, {result.other} other entries "
            f"to {args.target}"
        )
        for path in result.suspect_restored:
            app.print(f"note: {path} was backed up as suspect (potential integrity problems)")
        if result.skipped_existing:
            app.print(f"{result.skipped_existing} existing files were not overwritten (use --overwrite)")
        if result.skipped_suspect:
            app.print(f"{result.skipped_suspect} suspect files were skipped")
        if result.errors:
            app.print(f"{result.errors} entries could not be restored")
    return result.exit_code
