"""`shadowvault backup PATHS…`: back up files (or configured sets) into a snapshot."""

from __future__ import annotations

import argparse

from shadowvault.engine.backup import BackupOptions, BackupSession
from shadowvault.errors import UsageError
from shadowvault.openfiles import RetryPolicy, Strategy
from shadowvault.repo import DEFAULT_PACK_SIZE
from shadowvault.snapshots import SnapshotMode

from ..app import App
from ..render import BackupRenderer

HELP = "back up files and directories"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Sources and the per-run overrides of the set options."""
    p.add_argument("paths", nargs="*", help="files and directories to back up")
    p.add_argument("--tag", action="append", default=[], help="add a tag to the snapshot (repeatable)")
    p.add_argument("--host", help="host name to record (default: this machine's)")
    p.add_argument("--force", action="store_true", help="read every file, even unchanged ones")
    p.add_argument("--parent", help="snapshot to compare against (default: latest of this host and paths)")
    p.add_argument(
        "--exclude", action="append", default=[], help="glob to exclude, `**` allowed (repeatable)"
    )
    p.add_argument(
        "--exclude-if-present",
        action="append",
        default=None,
        help="skip directories containing this file (default: CACHEDIR.TAG)",
    )
    p.add_argument("--no-default-excludes", action="store_true", help="do not skip the built-in system files")
    p.add_argument("-x", "--one-file-system", action="store_true", help="do not cross file-system boundaries")
    p.add_argument(
        "--open-files",
        choices=[s.value for s in Strategy],
        default=None,
        help="open-file strategy (default: try-deny-write)",
    )
    p.add_argument("--retry-times", type=int, default=None, help="retries of a failed file, 0–10")
    p.add_argument("--retry-interval", type=int, default=None, help="seconds between retries, 0–999")
    p.add_argument(
        "--retry-on-change",
        action="store_true",
        default=None,
        help="also retry files that changed while read",
    )
    p.add_argument(
        "--snapshot",
        choices=[m.value for m in SnapshotMode],
        default=None,
        help="volume snapshots: off, auto or required (default: off)",
    )
    p.add_argument("--stop-on-errors", type=int, default=None, help="stop after N failed files (0: never)")
    p.add_argument("--pack-size", type=int, default=None, help="target pack size in MiB (default 16)")


def options_from_args(args: argparse.Namespace) -> BackupOptions:
    """Command-line values → engine options; range errors name the allowed values."""
    try:
        retry = RetryPolicy(
            times=args.retry_times if args.retry_times is not None else 0,
            interval=args.retry_interval if args.retry_interval is not None else 0,
            on_change=bool(args.retry_on_change),
        )
    except ValueError as e:
        raise UsageError(str(e)) from None
    if args.stop_on_errors is not None and args.stop_on_errors < 0:
        raise UsageError("--stop-on-errors must be 0 (never stop) or a positive number of files")
    return BackupOptions(
        sources=list(args.paths),
        strategy=Strategy(args.open_files) if args.open_files else Strategy.TRY_DENY_WRITE,
        retry=retry,
        excludes=list(args.exclude),
        exclude_if_present=args.exclude_if_present
        if args.exclude_if_present is not None
        else ["CACHEDIR.TAG"],
        use_default_excludes=not args.no_default_excludes,
        one_file_system=args.one_file_system,
        tags=list(args.tag),
        host=args.host,
        force=args.force,
        parent=args.parent,
        snapshot_mode=SnapshotMode(args.snapshot) if args.snapshot else SnapshotMode.OFF,
        stop_on_errors=args.stop_on_errors or 0,
    )


def run(app: App, args: argparse.Namespace) -> int:
    """Run the backup and return DESIGN's exit code (0 ok, 1 fatal, 3 failed files, 4 suspect files)."""
    if not args.paths:
        raise UsageError("backup needs at least one PATH")
    options = options_from_args(args)
    pack_size = DEFAULT_PACK_SIZE
    if args.pack_size is not None:
        if not 1 <= args.pack_size <= 128:
            raise UsageError("--pack-size must be between 1 and 128 MiB")
        pack_size = args.pack_size * 1024 * 1024
    repo = app.open_repo(create_default=True, pack_size=pack_size)
    repo_path, _, _ = app.repo_location()
    options.excluded_paths.append(str(repo_path))
    renderer = BackupRenderer(app)
    try:
        with repo.lock(exclusive=False):
            repo.load_index()
            result = BackupSession(repo, options, renderer).run()
    finally:
        renderer.close()
        repo.close()
    return result.exit_code
