"""What ``status``, the metrics textfile and the web page show: one read API, typed values.

Three sources, read and never written:

* the **activity log** — per set the last run (time, duration, result, exit code, counts, bytes)
  and the suspect and failed files of that run with reason, attempts and writer processes;
* the **configuration** — which sets exist and their ``schedule`` (next run, and whether a due
  run was missed);
* the **repository** — snapshot count, size on disk, data no snapshot references, and the last
  ``check`` recorded by :mod:`shadowvault.engine.checks`.

A set is *flagged* when its last run failed (fatal, interrupted, or files failed), when a scheduled
run came due and no successful run followed it, or when it has a schedule and never ran. The
decisions are pure functions of the records and ``now`` so they are tested without waiting.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from shadowvault.config import BackupSet, Config
from shadowvault.errors import RepoError
from shadowvault.repo import FileType, Repository
from shadowvault.repo.maintenance import used_blobs

from .activity import ActivityLog, FileRecord, SessionRecord, SessionStatus
from .checks import CheckRecord, last_check
from .timing import timing_of

__all__ = [
    "AD_HOC",
    "ClassCounts",
    "Flag",
    "NextRun",
    "ProblemFile",
    "RepositoryStatus",
    "RunInfo",
    "SetStatus",
    "Status",
    "WriterProcess",
    "collect_status",
    "flags_for",
    "next_run",
    "problem_files",
    "read_status",
    "repository_status",
    "run_history",
    "set_status",
]

FlagKind = Literal["failed", "files-failed", "missed", "never-run", "running"]
# A run that wrote a snapshot counts as having run (exit 0, 3 or 4); the others did not.
_RAN = ("completed", "partial")
# How far past a due time a run may start before the set counts as having missed it. Capped at
# half the interval so an hourly schedule is not given a whole hour.
_MISSED_GRACE = timedelta(hours=1)
_PROBLEMS = ("suspect", "failed")
# The name under which runs without a set (`backup PATHS`, the zero-configuration first run) are
# shown: a set name is never empty.
AD_HOC = ""
# How many of the newest sessions are searched for set names and for runs without a set.
_RECENT = 1000


@dataclass(frozen=True)
class ClassCounts:
    """Files per class."""

    ok: int = 0
    suspect: int = 0
    failed: int = 0


@dataclass(frozen=True)
class WriterProcess:
    """A process that had a file open for writing."""

    pid: int
    command: str


@dataclass(frozen=True)
class ProblemFile:
    """A suspect or failed file of one run. ``path`` is for display (undecodable bytes as \\xNN)."""

    path: str
    path_bytes: bytes
    classification: str
    reason: str | None
    message: str | None
    attempts: int
    writers: tuple[WriterProcess, ...]


@dataclass(frozen=True)
class RunInfo:
    """One backup session as the status shows it."""

    session_id: int
    set_name: str | None
    started: datetime
    ended: datetime | None
    status: SessionStatus
    exit_code: int | None
    counts: ClassCounts
    bytes_read: int
    bytes_added: int
    snapshot_id: str | None

    @property
    def duration(self) -> float | None:
        """Seconds the run took; None while it runs (or if it never finished)."""
        return (self.ended - self.started).total_seconds() if self.ended else None

    @property
    def succeeded(self) -> bool:
        """True when the run wrote a snapshot (files may still be suspect or failed)."""
        return self.status in _RAN and self.snapshot_id is not None


@dataclass(frozen=True)
class NextRun:
    """When a scheduled set runs next, and the window its start must fall in (if it has one)."""

    at: datetime
    window: str | None = None


@dataclass(frozen=True)
class Flag:
    """Why a set needs attention (``running`` is information, not a problem)."""

    kind: FlagKind
    message: str


@dataclass(frozen=True)
class SetStatus:
    """Everything ``status`` says about one backup set."""

    name: str
    schedule: str | None
    last_run: RunInfo | None
    last_success: RunInfo | None
    problems: tuple[ProblemFile, ...]
    next_run: NextRun | None
    flags: tuple[Flag, ...]

    @property
    def flagged(self) -> bool:
        """True when the set failed, missed its schedule or never ran although scheduled."""
        return any(f.kind != "running" for f in self.flags)


@dataclass(frozen=True)
class RepositoryStatus:
    """Size and health of one repository."""

    location: str
    repo_id: str
    snapshots: int
    size_bytes: int
    pack_files: int
    unreferenced_bytes: int | None
    last_check: CheckRecord | None


@dataclass(frozen=True)
class Status:
    """The whole picture at ``generated``."""

    generated: datetime
    sets: tuple[SetStatus, ...]
    repositories: tuple[RepositoryStatus, ...]


# -- schedules ------------------------------------------------------------------------------------


def next_run(bset: BackupSet, after: datetime) -> NextRun | None:
    """The first scheduled start of ``bset`` after ``after`` (aware), or None without a schedule.

    The daemon's own computation (``engine.timing``: time zone, window, this host's jitter), so
    status shows the start the daemon will make.
    """
    timing = timing_of(bset)
    try:
        run = timing.next_run(after, socket.gethostname())
    except ValueError:
        return None  # a schedule that never fires ("0 0 31 2 *", or never inside its window)
    if run is None:
        return None
    return NextRun(at=run.start.astimezone(UTC), window=bset.window)


def flags_for(
    bset: BackupSet | None,
    runs: Sequence[RunInfo],
    now: datetime,
    next_of: Callable[[BackupSet, datetime], NextRun | None] = next_run,
) -> tuple[Flag, ...]:
    """Why the set with these runs (newest first) needs attention at ``now`` (pure but for
    ``next_of``, which maps (set, after) to the next :class:`NextRun`)."""
    flags: list[Flag] = []
    last = runs[0] if runs else None
    if last is not None:
        when = last.started.astimezone().strftime("%Y-%m-%d %H:%M")
        if last.status == "running":
            flags.append(Flag("running", f"a run started {when} is still going"))
        elif not last.succeeded:
            code = f", exit code {last.exit_code}" if last.exit_code is not None else ""
            flags.append(Flag("failed", f"the last run ({when}) {last.status} without a snapshot{code}"))
        elif last.counts.failed:
            n = last.counts.failed
            what = "1 file" if n == 1 else f"{n} files"
            flags.append(Flag("files-failed", f"the last run ({when}) could not back up {what}"))
    if bset is None or bset.schedule is None:
        return tuple(flags)
    success = next((r for r in runs if r.succeeded), None)
    reference = success.started if success else (runs[-1].started if runs else None)
    if reference is None:
        flags.append(Flag("never-run", f"scheduled ({bset.schedule}) but no run is recorded"))
        return tuple(flags)
    due = next_of(bset, reference)
    if due is None:
        return tuple(flags)
    after_due = next_of(bset, due.at)
    interval = (after_due.at - due.at) if after_due else _MISSED_GRACE * 2
    grace = min(_MISSED_GRACE, interval / 2)
    if due.at + grace < now:
        since = "no successful run" if success is None else "no successful run since"
        flags.append(
            Flag(
                "missed",
                f"a run was due {due.at.astimezone().strftime('%Y-%m-%d %H:%M')} ({bset.schedule}); "
                f"{since} {reference.astimezone().strftime('%Y-%m-%d %H:%M') if success else 'at all'}",
            )
        )
    return tuple(flags)


# -- activity log ---------------------------------------------------------------------------------


def _run(r: SessionRecord) -> RunInfo:
    return RunInfo(
        session_id=r.id,
        set_name=r.set_name,
        started=r.started,
        ended=r.ended,
        status=r.status,
        exit_code=r.exit_code,
        counts=ClassCounts(r.counts.get("ok", 0), r.counts.get("suspect", 0), r.counts.get("failed", 0)),
        bytes_read=r.bytes_read,
        bytes_added=r.bytes_added,
        snapshot_id=r.snapshot_id,
    )


def _writer(raw: Any) -> WriterProcess | None:
    if isinstance(raw, dict) and isinstance(raw.get("pid"), int):
        return WriterProcess(pid=raw["pid"], command=str(raw.get("command") or "?"))
    return None


def _problem(f: FileRecord) -> ProblemFile:
    writers = tuple(w for w in (_writer(x) for x in f.writers) if w is not None)
    return ProblemFile(
        path=f.path,
        path_bytes=f.path_bytes,
        classification=f.classification,
        reason=f.reason,
        message=f.message,
        attempts=f.attempts,
        writers=writers,
    )


def run_history(log: ActivityLog, set_name: str | None, limit: int = 30) -> list[RunInfo]:
    """The newest ``limit`` runs of a set, newest first (``None``: every set; :data:`AD_HOC`:
    runs without a set, found among the newest ``_RECENT`` sessions)."""
    if set_name == AD_HOC:
        return [_run(r) for r in log.sessions(limit=_RECENT) if r.set_name is None][:limit]
    return [_run(r) for r in log.sessions(set_name, limit=limit)]


def session_run(log: ActivityLog, session_id: int) -> RunInfo | None:
    """One run by activity session id, or None."""
    record = log.session(session_id)
    return _run(record) if record else None


def problem_files(log: ActivityLog, session_id: int) -> list[ProblemFile]:
    """The suspect and failed files of one session, in the order they were recorded."""
    return [_problem(f) for f in log.files(session_id, _PROBLEMS)]


def set_status(
    name: str, bset: BackupSet | None, log: ActivityLog | None, now: datetime, *, history: int = 30
) -> SetStatus:
    """The status of one set (``bset`` None: a set the log knows but the configuration no longer has)."""
    runs = run_history(log, name, history) if log else []
    last = runs[0] if runs else None
    problems = tuple(problem_files(log, last.session_id)) if log and last else ()
    return SetStatus(
        name=name,
        schedule=bset.schedule if bset else None,
        last_run=last,
        last_success=next((r for r in runs if r.succeeded), None),
        problems=problems,
        next_run=next_run(bset, now) if bset else None,
        flags=flags_for(bset, runs, now),
    )


def set_names(config: Config | None, log: ActivityLog | None) -> list[str]:
    """Configured sets first (in file order), then sets the recent log knows that are gone now,
    then :data:`AD_HOC` when recent runs named no set."""
    names = list(config.set_names()) if config else []
    ad_hoc = False
    if log is not None:
        for r in log.sessions(limit=_RECENT):
            if r.set_name and r.set_name not in names:
                names.append(r.set_name)
            ad_hoc = ad_hoc or r.set_name is None
    return [*names, AD_HOC] if ad_hoc else names


# -- repository -----------------------------------------------------------------------------------


def _unreferenced(repo: Repository, pack_sizes: dict[str, int]) -> int:
    """Bytes a prune could free: blobs no snapshot reaches (and second copies), unindexed packs."""
    used, _ = used_blobs(repo)
    unreferenced = 0
    indexed: set[str] = set()
    for pack_id in repo.index.pack_ids():
        indexed.add(pack_id.hex())
        if pack_id.hex() not in pack_sizes:
            continue  # indexed but gone: a problem for `check`, not space a prune could free
        for b in repo.index.pack_blobs(pack_id):
            if b.id in used[b.type]:
                used[b.type].discard(b.id)  # a second copy elsewhere is unreferenced
            else:
                unreferenced += b.length
    return unreferenced + sum(size for name, size in pack_sizes.items() if name not in indexed)


def repository_status(
    repo: Repository, checks_dir: Path | None, *, unreferenced: bool = True
) -> RepositoryStatus:
    """Snapshot count, size on disk, unreferenced data (walks every tree) and the last check.

    The index must be loaded. A damaged repository yields ``unreferenced_bytes = None`` rather
    than an error: status reports, ``check`` diagnoses.
    """
    sizes: dict[FileType, dict[str, int]] = {ft: dict(repo.list_files(ft)) for ft in FileType}
    repo_id = str(repo.config.get("id", ""))
    unref: int | None = None
    if unreferenced:
        try:
            unref = _unreferenced(repo, sizes[FileType.PACK])
        except RepoError:  # a missing blob is for `check` to explain, not for status
            unref = None
    return RepositoryStatus(
        location=repo.location(),
        repo_id=repo_id,
        snapshots=len(sizes[FileType.SNAPSHOT]),
        size_bytes=sum(sum(by_name.values()) for by_name in sizes.values()),
        pack_files=len(sizes[FileType.PACK]),
        unreferenced_bytes=unref,
        last_check=last_check(checks_dir, repo_id) if checks_dir and repo_id else None,
    )


def collect_status(
    config: Config | None,
    log: ActivityLog | None,
    repos: Sequence[RepositoryStatus],
    *,
    now: datetime | None = None,
) -> Status:
    """Sets from configuration and log, with the repositories' status already taken."""
    now = now or datetime.now(UTC)
    sets = []
    for name in set_names(config, log):
        bset = config.effective(name).values if config and name in config.set_names() else None
        sets.append(set_status(name, bset, log, now))
    return Status(generated=now, sets=tuple(sets), repositories=tuple(repos))


def read_status(
    config: Config | None,
    activity_path: Path | None,
    repo: Repository | None,
    checks_dir: Path | None,
    *,
    now: datetime | None = None,
    unreferenced: bool = True,
) -> Status:
    """Take the status: one call for every front end (``status``, metrics, the web page).

    A missing activity log means no run happened yet; it is not created by reading. ``repo``
    (index loaded or not) is None when only the sets are wanted.
    """
    repos: list[RepositoryStatus] = []
    if repo is not None:
        repo.load_index()
        repos.append(repository_status(repo, checks_dir, unreferenced=unreferenced))
    if activity_path is None or not activity_path.exists():
        return collect_status(config, None, repos, now=now)
    with ActivityLog(activity_path) as log:
        return collect_status(config, log, repos, now=now)
