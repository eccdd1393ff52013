"""Backup sets as engine runs: config values → ``BackupOptions``, and one recorded session per run.

Two jobs, kept apart:

* **Mapping** (pure): :func:`backup_options` turns a validated ``config.BackupSet`` into the
  engine's ``BackupOptions`` — strings become :class:`Strategy`, :class:`SnapshotMode` and a
  :class:`RetryPolicy`, the set's name becomes a snapshot tag. :func:`worst_exit_code` folds the
  exit codes of several sets into one.
* **Recording** (a wrapper, R4): :func:`run_set` runs a ``BackupSession`` with its events passing
  through :class:`ActivityRecorder`, which writes problem files (every file when the set asks for
  a detailed log) and warnings into the :class:`ActivityLog`, then closes the session row with
  counts, bytes, snapshot id, exit code and status. The row is committed before the session
  starts reading, so a client killed mid-session leaves it "running", which readers show as
  "interrupted".
"""

from __future__ import annotations

import dataclasses
import glob
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from shadowvault import interrupts
from shadowvault.config import BackupSet, Config, EffectiveSet
from shadowvault.errors import ConfigError, ShadowvaultError, UsageError
from shadowvault.fs import default_excludes
from shadowvault.openfiles import RetryPolicy, Strategy
from shadowvault.repo import Repository
from shadowvault.snapshots import SnapshotMode

from .activity import ActivityLog, SessionStatus
from .backup import BackupOptions, BackupResult, BackupSession
from .events import Event, EventSink, FileDone, FilesUnchanged, SessionSummary, SubtreeUnchanged, Warning_
from .summary import EXIT_FATAL, EXIT_OK, EXIT_SOME_FAILED, EXIT_SOME_SUSPECT, EXIT_USAGE

__all__ = [
    "ActivityRecorder",
    "SetRun",
    "backup_options",
    "builtin_exclusions",
    "choose_sets",
    "retry_policy",
    "run_set",
    "snapshot_mode",
    "sqlite_sources",
    "strategy",
    "worst_exit_code",
]

# Severity of exit codes, mildest first: a fatal set outweighs failed files, which outweigh
# suspect ones; a usage error (nothing ran) outweighs everything.
_SEVERITY = (EXIT_OK, EXIT_SOME_SUSPECT, EXIT_SOME_FAILED, EXIT_FATAL, EXIT_USAGE)


def strategy(value: str) -> Strategy:
    """The open-file strategy named by a config value such as ``"deny-write"``."""
    try:
        return Strategy(value)
    except ValueError:
        allowed = ", ".join(s.value for s in Strategy)
        raise ConfigError(f"open_files = {value!r} is not allowed: choose one of {allowed}") from None


def snapshot_mode(value: str) -> SnapshotMode:
    """The volume-snapshot mode named by a config value (``off``, ``auto``, ``required``)."""
    try:
        return SnapshotMode(value)
    except ValueError:
        allowed = ", ".join(m.value for m in SnapshotMode)
        raise ConfigError(f"snapshot = {value!r} is not allowed: choose one of {allowed}") from None


def retry_policy(bset: BackupSet) -> RetryPolicy:
    """The set's retry options as a policy; out-of-range values are a ``ConfigError``."""
    try:
        return RetryPolicy(
            times=bset.retry_times, interval=bset.retry_interval, on_change=bset.retry_on_change
        )
    except ValueError as e:
        raise ConfigError(str(e)) from None


def choose_sets(
    config: Config | None, names: list[str], *, all_sets: bool, paths: list[str]
) -> list[EffectiveSet]:
    """Which sets a backup run means: the named ones, every one, or an ad-hoc run of ``paths``.

    An ad-hoc run takes ``[defaults]`` when a configuration exists, else the built-ins; ``paths``
    given with one set replace its sources (the caller applies that override). ``UsageError``
    for combinations that make no sense, ``ConfigError`` for an unknown set name.
    """
    if names or all_sets:
        if config is None or config.path is None:
            raise UsageError(
                "--set and --all-sets need a configuration file (--config or $SHADOWVAULT_CONFIG)"
            )
        if all_sets and (names or paths):
            raise UsageError("--all-sets runs every set: give neither --set nor PATHS with it")
        if paths and len(names) > 1:
            raise UsageError("PATHS replace the sources of one set: give a single --set with them")
        chosen = config.set_names() if all_sets else list(dict.fromkeys(names))
        if not chosen:
            raise UsageError(f"{config.path} defines no backup sets ([sets.NAME] tables)")
        return [config.effective(n) for n in chosen]
    if not paths:
        raise UsageError("backup needs at least one PATH, --set NAME or --all-sets")
    return [(config or Config(path=None)).defaults_set()]


def backup_options(
    bset: BackupSet,
    *,
    excluded_paths: list[str] | None = None,
    host: str | None = None,
    force: bool = False,
    parent: str | None = None,
    workers: int = 0,
    state_dir: str | None = None,
) -> BackupOptions:
    """Engine options for one run of ``bset`` (``bset.name`` "" is an ad-hoc run without a set).

    A named set's snapshots carry its name as a tag, so ``snapshots --tag NAME`` and retention
    per set can find them.
    """
    sqlite_set = bset.type == "sqlite"  # every type the schema allows can be backed up
    sources = sqlite_sources(bset) if sqlite_set else list(bset.sources)
    tags = list(bset.tags)
    if bset.name and bset.name not in tags:
        tags.insert(0, bset.name)
    return BackupOptions(
        sources=sources,
        strategy=strategy(bset.open_files),
        retry=retry_policy(bset),
        excludes=list(bset.exclude),
        exclude_if_present=list(bset.exclude_if_present),
        use_default_excludes=bset.use_default_excludes,
        one_file_system=bset.one_file_system,
        tags=tags,
        host=host,
        force=force,
        parent=parent,
        # A sqlite set copies through SQLite: a volume snapshot of the files would add nothing.
        snapshot_mode=SnapshotMode.OFF if sqlite_set else snapshot_mode(bset.snapshot),
        pre_snapshot=bset.pre_snapshot,
        post_snapshot=bset.post_snapshot,
        stop_on_errors=bset.stop_on_errors,
        read_concurrency=bset.read_concurrency,
        set_name=bset.name or None,
        excluded_paths=list(excluded_paths or []),
        workers=workers,
        databases=bset.database_servers(),
        sqlite_aware=bset.sqlite_aware,
        sqlite_set=sqlite_set,
        state_dir=state_dir,
    )


def sqlite_sources(bset: BackupSet) -> list[str]:
    """The database files of a ``sqlite`` set: ``databases`` (and ``sources``), globs expanded.

    A glob that matches nothing is a ``ConfigError`` naming it; a plain path is kept as given,
    so a missing one is reported by the session like any missing source.
    """
    found: list[str] = []
    for pattern in [*bset.databases, *bset.sources]:
        if not glob.has_magic(pattern):
            found.append(pattern)
            continue
        matches = sorted(glob.glob(os.path.expanduser(pattern), recursive=True))
        if not matches:
            raise ConfigError(f"set {bset.name!r}: databases pattern {pattern!r} matches no file")
        found.extend(matches)
    if not found:
        raise ConfigError(f"set {bset.name!r} has type 'sqlite' but no databases: add databases = [...]")
    return list(dict.fromkeys(found))


def builtin_exclusions() -> dict[str, list[str]]:
    """What ``use_default_excludes = true`` leaves out, for ``sets show``.

    ``patterns`` are globs in exclude syntax; ``content`` and ``runtime`` are the checks that no
    pattern can express (they apply whatever the file is called).
    """
    return {
        "patterns": default_excludes(),
        "content": [
            "swap areas (recognised by the mkswap signature, whatever their name)",
            "directories holding a CACHEDIR.TAG that starts with the Cache Directory Tagging signature",
        ],
        "runtime": [
            "the repository itself",
            "shadowvault's state directory (activity log)",
            "active swap files listed in /proc/swaps",
        ],
    }


def worst_exit_code(codes: list[int]) -> int:
    """The most severe of several runs' exit codes (0 < 4 < 3 < 1 < 2); 0 for none."""
    rank = {code: i for i, code in enumerate(_SEVERITY)}
    return max(codes, key=lambda c: rank.get(c, len(_SEVERITY)), default=EXIT_OK)


class ActivityRecorder:
    """An ``EventSink`` wrapper: records problem files and warnings, then passes every event on.

    ``detailed`` records every file (the set's ``detailed_log``), not only suspect and failed ones.
    """

    def __init__(self, inner: EventSink, log: ActivityLog, session_id: int, *, detailed: bool) -> None:
        self.inner = inner
        self.log = log
        self.session_id = session_id
        self.detailed = detailed
        self.summary: SessionSummary | None = None
        # Per class, for a session that ends without a summary (a source that cannot be read).
        self.counts: dict[str, int] = {}

    def __call__(self, event: Event) -> None:
        if isinstance(event, FileDone):
            o = event.outcome
            cls = o.classification.value
            self.counts[cls] = self.counts.get(cls, 0) + 1
            # Database dumps and SQLite copies are always logged: size, duration and server
            # version, or the writer that was active, belong there.
            if self.detailed or o.via_sqlite or o.dump is not None or o.problem:
                outcome = o.to_json()
                if event.reused:
                    outcome.setdefault("reason", "unchanged")
                self.log.record_file(self.session_id, event.path, outcome)
        elif isinstance(event, SubtreeUnchanged):
            # Only when files need not be named (a detailed log sets ``unchanged_by_name``).
            self.counts["ok"] = self.counts.get("ok", 0) + len(event)
        elif isinstance(event, FilesUnchanged):
            self.counts["ok"] = self.counts.get("ok", 0) + len(event)
            if self.detailed:
                for path in event.paths:
                    self.log.record_file(self.session_id, path, {"class": "ok", "reason": "unchanged"})
        elif isinstance(event, Warning_):
            self.log.warn(self.session_id, event.message)
        elif isinstance(event, SessionSummary):
            self.summary = event
        self.inner(event)


@dataclass(frozen=True)
class SetRun:
    """The outcome of :func:`run_set`: the activity session and the engine's result (if any)."""

    set_name: str | None
    session_id: int
    status: SessionStatus
    exit_code: int
    result: BackupResult | None
    error: str | None = None


def _status(result: BackupResult) -> SessionStatus:
    if result.stop is not None and result.stop.kind == "interrupted":
        return "interrupted"  # the daemon was told to stop; what was saved is a partial snapshot
    return "partial" if result.partial else "completed"


def run_set(
    repo: Repository,
    options: BackupOptions,
    sink: EventSink,
    activity: ActivityLog | Path,
    *,
    detailed_log: bool = False,
    on_session: Callable[[int], None] | None = None,
    started: float | None = None,
) -> SetRun:
    """Run one backup session recorded in the activity log; returns a :class:`SetRun`.

    ``activity`` is an open log or the path of its database (the CLI passes the repository's
    log, ``activity.log_path``). ``on_session(session_id)`` is called once the session row
    exists, before anything is read. A ``ShadowvaultError`` from the engine (missing source,
    repository trouble) closes the session as "failed" with its exit code and is raised again;
    Ctrl-C closes it as "interrupted". ``options.set_name`` is the set recorded (None: ad hoc).
    ``started`` (epoch seconds) is the scheduler's clock reading for the session row.
    """
    if isinstance(activity, Path):
        with ActivityLog(activity) as log:
            return run_set(
                repo, options, sink, log, detailed_log=detailed_log, on_session=on_session, started=started
            )
    log = activity
    host = options.host or socket.gethostname()
    recorder: ActivityRecorder | None = None
    try:
        # The row and the recorder that closes it come as one; a signal meanwhile is delivered
        # after both exist, inside this try, so the row is closed as "interrupted".
        with interrupts.held():
            sid = log.start_session(options.set_name, host, repository=repo.config.get("id"), started=started)
            recorder = ActivityRecorder(sink, log, sid, detailed=detailed_log)
        if on_session is not None:
            on_session(sid)
        if detailed_log and not options.unchanged_by_name:
            options = dataclasses.replace(options, unchanged_by_name=True)  # the log names every file
        result = BackupSession(repo, options, recorder).run()
        if result.stop is not None:
            log.warn(sid, f"partial snapshot: {result.stop.message}")
        elif result.partial:
            log.warn(
                sid,
                f"partial snapshot: the set stopped after {result.counts.failed} failed files "
                f"(stop_on_errors = {options.stop_on_errors})",
            )
        counts = result.counts
        log.finish_session(
            sid,
            status=_status(result),
            exit_code=result.exit_code,
            snapshot_id=result.snapshot_id,
            bytes_read=counts.bytes_read,
            bytes_added=counts.bytes_added,
            counts={"ok": counts.ok, "suspect": counts.suspect, "failed": counts.failed},
        )
    except ShadowvaultError as e:
        _finish(log, "failed", e.exit_code, recorder, str(e))
        raise
    except KeyboardInterrupt as e:
        # SIGINT 130, SIGTERM 143: the code the process ends with (even if the row was closed).
        _finish(log, "interrupted", interrupts.exit_code(e), recorder, None)
        raise
    except BaseException as e:
        _finish(log, "failed", EXIT_FATAL, recorder, f"internal error: {e!r}")
        raise
    return SetRun(options.set_name, sid, _status(result), result.exit_code, result)


def _finish(
    log: ActivityLog, status: SessionStatus, code: int, rec: ActivityRecorder | None, warning: str | None
) -> None:
    """Close a session that ended without a result, keeping whatever counts are known (nothing
    to close when it ended before its row was written)."""
    if rec is None:
        return
    sid = rec.session_id
    if warning is not None:
        log.warn(sid, warning)
    s = rec.summary
    log.finish_session(
        sid,
        status=status,
        exit_code=code,
        snapshot_id=s.snapshot_id if s else None,
        bytes_read=s.bytes_read if s else 0,
        bytes_added=s.bytes_added if s else 0,
        counts={"ok": s.files_ok, "suspect": s.files_suspect, "failed": s.files_failed} if s else rec.counts,
    )
