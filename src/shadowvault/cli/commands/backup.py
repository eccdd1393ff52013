"""`shadowvault backup PATHS… | --set NAME | --all-sets`: back up files or configured sets."""

from __future__ import annotations

import argparse
from typing import Any

from shadowvault import api
from shadowvault.config import Config, EffectiveSet
from shadowvault.engine.activity import log_path
from shadowvault.engine.backup import BackupOptions
from shadowvault.engine.hotbackup.stream import bound_malloc_arenas
from shadowvault.engine.scan import TotalsScan, dry_run
from shadowvault.engine.sets import backup_options, choose_sets, run_set, worst_exit_code
from shadowvault.errors import ShadowvaultError, UsageError
from shadowvault.repo import DEFAULT_PACK_SIZE, Repository

from ..app import App, state_dir
from ..backup_inputs import read_list_files
from ..parser import schema_option
from ..render import BackupRenderer, human_bytes

HELP = "back up files and directories, or configured backup sets"
EXIT_CODES = {3: "some files failed (not in the snapshot)", 4: "some files are suspect (no failures)"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Sources or sets, and the per-run overrides of the set options."""
    p.add_argument("paths", nargs="*", help="files and directories to back up")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="NAME", help="run a backup set")
    p.add_argument("--all-sets", action="store_true", help="run every set of the configuration, one by one")
    p.add_argument(
        "--tag", action="append", default=[], help="add tags to the snapshot: TAG[,TAG…] (repeatable)"
    )
    p.add_argument("--host", help="host name to record (default: this machine's)")
    p.add_argument("--force", action="store_true", help="read every file, even unchanged ones")
    p.add_argument("--parent", help="snapshot to compare against (default: latest of this host and paths)")
    p.add_argument(
        "--exclude", action="append", default=[], help="glob to exclude, `**` allowed (repeatable)"
    )
    p.add_argument(
        "--iexclude",
        action="append",
        default=[],
        metavar="GLOB",
        help="as --exclude, ignoring the case of letters (repeatable)",
    )
    p.add_argument(
        "--exclude-file",
        action="append",
        default=[],
        metavar="FILE",
        help="read exclude globs from FILE, one a line (# comments, blank lines ignored; repeatable)",
    )
    p.add_argument(
        "--files-from",
        action="append",
        default=[],
        metavar="FILE",
        help="read the paths to back up from FILE, one a line (- for stdin; repeatable)",
    )
    schema_option(p, "exclude_if_present")
    p.add_argument("--no-default-excludes", action="store_true", help="do not skip the built-in system files")
    schema_option(p, "one_file_system", "-x")
    for key in ("open_files", "retry_times", "retry_interval", "retry_on_change", "snapshot"):
        schema_option(p, key)
    schema_option(p, "stop_on_errors")
    schema_option(p, "read_concurrency")
    schema_option(p, "detailed_log")
    p.add_argument(
        "--no-sqlite-aware",
        action="store_true",
        help="read SQLite databases file by file instead of copying them through SQLite (sqlite_aware)",
    )
    p.add_argument(
        "-n",
        "--dry-run",
        action="store_true",
        help="only show what would be read and excluded, and its size (-v: every path)",
    )
    p.add_argument("--pack-size", type=int, default=None, help="target pack size in MiB (default 16)")


def _overrides(args: argparse.Namespace, eff: EffectiveSet) -> EffectiveSet:
    """Command-line flags over the set's values, validated like the file (ConfigError, exit 2)."""
    values: dict[str, Any] = {
        "open_files": args.open_files,
        "retry_times": args.retry_times,
        "retry_interval": args.retry_interval,
        "retry_on_change": args.retry_on_change,
        "snapshot": args.snapshot,
        "stop_on_errors": args.stop_on_errors,
        "read_concurrency": args.read_concurrency,
        "detailed_log": args.detailed_log,
        "exclude_if_present": args.exclude_if_present,
        "one_file_system": True if args.one_file_system else None,
        "use_default_excludes": False if args.no_default_excludes else None,
        "sqlite_aware": False if args.no_sqlite_aware else None,
        # --exclude and --tag add to what the set has rather than replacing it.
        "exclude": eff.values.exclude + args.exclude if args.exclude else None,
        # restic splits --tag a,b into two tags; so does this.
        "tags": eff.values.tags + [t for v in args.tag for t in v.split(",") if t] if args.tag else None,
    }
    if args.paths:
        values["sources"] = list(args.paths)
    return eff.with_overrides(**values)


def selected_sets(args: argparse.Namespace, config: Config | None) -> list[EffectiveSet]:
    """The sets this run backs up, with command-line overrides applied (no I/O besides config)."""
    chosen = choose_sets(config, args.sets, all_sets=args.all_sets, paths=args.paths)
    result = [_overrides(args, eff) for eff in chosen]
    for eff in result:
        if not eff.values.sources and not eff.values.databases:
            raise UsageError(f"set {eff.values.name!r} has no sources: add sources = [...] to it")
    return result


def run(app: App, args: argparse.Namespace) -> int:
    """Run each selected set as its own session; the exit code is the worst of them.

    DESIGN's exit codes: 0 ok, 1 fatal, 2 usage/config, 3 failed files, 4 suspect files.
    """
    # Configuration and flags are checked completely before the repository is touched.
    read_list_files(args)
    runs = selected_sets(args, app.config())
    pack_size = DEFAULT_PACK_SIZE
    if args.pack_size is not None:
        if not 1 <= args.pack_size <= 128:
            raise UsageError("--pack-size must be between 1 and 128 MiB")
        pack_size = args.pack_size * 1024 * 1024
    excluded = [p for p in (app.local_repo_dir(), str(state_dir())) if p]
    options = [
        backup_options(
            eff.values,
            excluded_paths=excluded,
            host=args.host,
            force=args.force,
            parent=args.parent,
            state_dir=str(state_dir()),
        )
        for eff in runs
    ]
    for opts in options:  # live data directories of every dumped server are left out of file sets
        opts.run_databases = [d for other in options if other is not opts for d in other.databases]
        opts.unchanged_by_name = app.verbose >= 2  # -vv lists each unchanged file
    if args.dry_run:
        return _dry_run(app, runs, options)
    # Before the prewarm, scan and blob threads exist: each thread that allocates before the limit
    # gets a malloc arena of its own, where freed chunk, compressed and sealed buffers (and dump
    # buffers) stay resident. Measured for files too (2026-11-30, 97 MiB of big files plus 175 MiB
    # of small ones, load ~8): peak RSS 178-186 -> 126-129 MiB, wall within noise, +0.5 s system
    # time (buffers of a MiB and more are mmapped each time).
    bound_malloc_arenas()
    # Opening the repository is mostly waiting (key derivation, the lock's settling pause, the
    # index); the sources' metadata is read into the cache meanwhile.
    warm = api.prewarm([s for opts in options for s in opts.sources])
    try:
        repo = app.open_repo(create_default=True, pack_size=pack_size)
    except BaseException:
        warm.stop()
        raise
    codes: list[int] = []
    try:
        with api.backup_lock(repo, warm=warm):
            for eff, opts in zip(runs, options, strict=True):
                codes.append(_run_one(app, repo, eff, opts, several=len(runs) > 1))
    finally:
        warm.stop()
        repo.close()
    return worst_exit_code(codes)


def _dry_run(app: App, runs: list[EffectiveSet], options: list[BackupOptions]) -> int:
    """Walk each set's sources with its selection rules; nothing is read or written."""
    for eff, opts in zip(runs, options, strict=True):
        found = dry_run(opts)
        if app.json:
            app.emit(
                {
                    "message_type": "dry_run",
                    "set": eff.values.name or None,
                    "files": found.files,
                    "dirs": found.dirs,
                    "other": found.other,
                    "bytes": found.bytes,
                    "excluded": [{"path": p, "reason": r} for p, r in found.excluded],
                    "errors": found.errors,
                }
            )
            continue
        if app.verbose:
            for path in found.included:
                app.print(f"would save  {path}")
        for path, reason in found.excluded:
            app.print(f"excluded    {path} ({reason})")
        for error in found.errors:
            app.warn(error)
        name = f"set {eff.values.name}: " if eff.values.name else ""
        app.print(
            f"{name}would back up {found.files} files, {found.dirs} directories, {found.other} other "
            f"entries, {human_bytes(found.bytes)}; {len(found.excluded)} excluded"
        )
    return 0


def _run_one(app: App, repo: Repository, eff: EffectiveSet, opts: BackupOptions, *, several: bool) -> int:
    name = eff.values.name or None

    def announce(session_id: int) -> None:
        if app.json:
            app.emit({"message_type": "session", "session_id": session_id, "set": name})
        elif name:
            app.info(f"set {name}: activity session {session_id}")

    # Totals for the percentage and ETA (restic's concurrent scanner), only when someone sees them.
    scan = TotalsScan(opts).start() if app.interactive or app.json else None
    renderer = BackupRenderer(app, scan)
    try:
        done = run_set(
            repo,
            opts,
            renderer,
            log_path(state_dir(), str(repo.config["id"])),
            detailed_log=eff.values.detailed_log,
            on_session=announce,
        )
    except ShadowvaultError as e:
        if not several:
            raise
        # One broken set must not keep the others from running; its error is still reported.
        app.warn(f"set {name}: {e}")
        return e.exit_code
    finally:
        renderer.close()
    return done.exit_code
