"""One scheduled run of a set: hooks, pings, the backup with its deadline, retention afterwards.

The daemon and the systemd service (``schedule run``) both call :func:`run_scheduled_set`, so a
set behaves the same whichever of them starts it. Order of a run::

    notify start → before_backup (non-zero: no backup, session "failed", reason logged)
    → open repository, shared lock → run_set (stop_at deadline, daemon stop request)
    → retention (forget_after_backup; the injected RetentionHook) → release lock
    → after_backup or on_failure → notify success or failure

Every run, including one that never started (:func:`record_missed`), is a row in the activity log.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from shadowvault.config import BackupSet
from shadowvault.errors import ShadowvaultError
from shadowvault.repo import Repository

from .activity import ActivityLog, SessionStatus
from .backup import StopRequest
from .events import Event, Warning_
from .hooks import RunFacts, notify, run_hook
from .sets import backup_options, run_set
from .summary import EXIT_FATAL, EXIT_OK, EXIT_SOME_SUSPECT
from .timing import timing_of

__all__ = [
    "RetentionHook",
    "RunEnvironment",
    "RunOutcome",
    "record_missed",
    "run_scheduled_set",
    "run_when_triggered",
]

# The hook point of issue 13: applies a set's retention (forget, and prune if the set says so)
# after a successful scheduled run, with the repository open and unlocked. Raising is reported
# as a warning of the run and never changes its result.
RetentionHook = Callable[[Repository, BackupSet], None]


@dataclass
class RunEnvironment:
    """What a scheduled run needs from outside: the repository, the log and the daemon's wishes."""

    open_repo: Callable[[], Repository]
    activity: ActivityLog
    host: str
    log: Callable[[str], None]
    excluded_paths: list[str] = field(default_factory=list)
    apply_retention: RetentionHook | None = None
    stop_requested: Callable[[], bool] = lambda: False


@dataclass(frozen=True)
class RunOutcome:
    """How a scheduled run ended (``session_id`` is its activity-log row)."""

    set_name: str
    status: SessionStatus
    exit_code: int
    session_id: int | None
    snapshot_id: str | None = None


def record_missed(activity: ActivityLog, set_name: str, host: str, when: datetime, reason: str) -> int:
    """A ``missed`` row: the run planned for ``when`` could not start (``reason``)."""
    sid = activity.start_session(set_name, host, started=when.timestamp())
    activity.warn(sid, f"missed: {reason}")
    activity.finish_session(
        sid, status="missed", exit_code=None, snapshot_id=None, bytes_read=0, bytes_added=0, counts={}
    )
    return sid


def _stop_check(
    env: RunEnvironment, bset: BackupSet, seconds_left: float | None
) -> Callable[[], StopRequest | None]:
    end = None if seconds_left is None else time.monotonic() + seconds_left

    def check() -> StopRequest | None:
        if env.stop_requested():
            return StopRequest("interrupted", "interrupted: the daemon was told to stop")
        if end is not None and time.monotonic() >= end:
            return StopRequest("deadline", f"stop_at {bset.stop_at} reached; saved files kept")
        return None

    return check


def run_scheduled_set(
    bset: BackupSet, env: RunEnvironment, *, now: datetime, seconds_left: float | None = None
) -> RunOutcome:
    """Run ``bset`` once as a scheduled run; ``seconds_left`` until its ``stop_at`` (None: none).

    ``now`` is the scheduler's clock reading, recorded as the session's start.
    """
    name = bset.name
    facts = RunFacts(name, env.host)
    ping = _pinger(bset, env)
    ping("start", facts)
    if bset.before_backup:
        hook = run_hook("before_backup", bset.before_backup, facts)
        if not hook.ok:
            sid = env.activity.start_session(name, env.host, started=now.timestamp())
            reason = f"{hook.describe()}; the backup did not run"
            env.activity.warn(sid, reason)
            env.activity.finish_session(
                sid,
                status="failed",
                exit_code=EXIT_FATAL,
                snapshot_id=None,
                bytes_read=0,
                bytes_added=0,
                counts={},
            )
            env.log(f"set {name}: {reason}")
            failed = RunFacts(name, env.host, sid, exit_code=EXIT_FATAL, status="failed")
            _after(bset, env, failed, ok=False, ping=ping)
            return RunOutcome(name, "failed", EXIT_FATAL, sid)
    outcome = _backup(bset, env, now, seconds_left)
    ok = outcome.snapshot_id is not None and outcome.exit_code in (EXIT_OK, EXIT_SOME_SUSPECT)
    done = RunFacts(
        name,
        env.host,
        outcome.session_id,
        outcome.snapshot_id,
        *_counts(env.activity, outcome.session_id),
        exit_code=outcome.exit_code,
        status=outcome.status,
    )
    _after(bset, env, done, ok=ok and outcome.status != "interrupted", ping=ping)
    return outcome


def _counts(activity: ActivityLog, sid: int | None) -> tuple[int, int, int]:
    rec = activity.session(sid) if sid is not None else None
    if rec is None:
        return 0, 0, 0
    return rec.counts.get("ok", 0), rec.counts.get("suspect", 0), rec.counts.get("failed", 0)


def _pinger(bset: BackupSet, env: RunEnvironment) -> Callable[[str, RunFacts], None]:
    def ping(event: str, facts: RunFacts) -> None:
        assert event in ("start", "success", "failure")
        notify(
            bset.notify,
            event,  # type: ignore[arg-type]
            facts,
            timeout=bset.notify_timeout,
            start_suffix=bset.notify_start_suffix,
            fail_suffix=bset.notify_fail_suffix,
            log=lambda m: env.log(f"set {bset.name}: {m}"),
        )

    return ping


def _after(
    bset: BackupSet, env: RunEnvironment, facts: RunFacts, *, ok: bool, ping: Callable[..., None]
) -> None:
    command = bset.after_backup if ok else bset.on_failure
    if command:
        hook = run_hook("after_backup" if ok else "on_failure", command, facts)
        if not hook.ok:
            env.log(f"set {bset.name}: {hook.describe()}")
            if facts.session_id is not None:
                env.activity.warn(facts.session_id, hook.describe())
    ping("success" if ok else "failure", facts)


def _backup(bset: BackupSet, env: RunEnvironment, now: datetime, seconds_left: float | None) -> RunOutcome:
    name = bset.name
    sids: list[int] = []

    def sink(event: Event) -> None:
        if isinstance(event, Warning_):
            env.log(f"set {name}: {event.message}")

    repo: Repository | None = None
    try:
        opts = backup_options(bset, excluded_paths=env.excluded_paths)
        opts.stop_when = _stop_check(env, bset, seconds_left)
        repo = env.open_repo()
        with repo.lock(exclusive=False, meanwhile=repo.load_index):
            done = run_set(
                repo,
                opts,
                sink,
                env.activity,
                detailed_log=bset.detailed_log,
                on_session=sids.append,
                started=now.timestamp(),
            )
        if done.status == "completed" and done.exit_code in (EXIT_OK, EXIT_SOME_SUSPECT):
            _retention(bset, env, repo, done.session_id)
    except ShadowvaultError as e:
        env.log(f"set {name}: {e}")
        if not sids:  # failed before the session row existed (repository, configuration)
            sid = env.activity.start_session(name, env.host, started=now.timestamp())
            env.activity.warn(sid, str(e))
            env.activity.finish_session(
                sid,
                status="failed",
                exit_code=e.exit_code,
                snapshot_id=None,
                bytes_read=0,
                bytes_added=0,
                counts={},
            )
            sids.append(sid)
        return RunOutcome(name, "failed", e.exit_code, sids[0])
    finally:
        if repo is not None:
            repo.close()
    snapshot = done.result.snapshot_id if done.result else None
    return RunOutcome(name, done.status, done.exit_code, done.session_id, snapshot)


def _retention(bset: BackupSet, env: RunEnvironment, repo: Repository, sid: int) -> None:
    """The retention hook point: ``forget_after_backup`` with a non-empty ``retention``."""
    if not bset.forget_after_backup:
        return
    if bset.retention.is_empty():
        env.log(
            f"set {bset.name}: forget_after_backup is set but retention has no keep_* rule; nothing forgotten"
        )
        return
    if env.apply_retention is None:
        message = "forget_after_backup: this build has no retention to apply; nothing forgotten"
        env.log(f"set {bset.name}: {message}")
        env.activity.warn(sid, message)
        return
    try:
        env.apply_retention(repo, bset)
    except ShadowvaultError as e:
        env.log(f"set {bset.name}: retention failed: {e}")
        env.activity.warn(sid, f"retention failed: {e}")


def run_when_triggered(bset: BackupSet, env: RunEnvironment, now: datetime) -> RunOutcome:
    """A run started from outside (a systemd timer): inside the window it runs with its
    ``stop_at`` deadline, outside it is recorded as ``missed``."""
    timing = timing_of(bset)
    if not timing.in_window(now):
        when = now.astimezone(timing.zone).isoformat(" ", "minutes")
        sid = record_missed(
            env.activity, bset.name, env.host, now, f"started at {when}, outside window {bset.window}"
        )
        env.log(f"set {bset.name}: not started: {when} is outside the window {bset.window}")
        return RunOutcome(bset.name, "missed", 0, sid)
    deadline = timing.deadline(now)
    left = None if deadline is None else (deadline.astimezone(UTC) - now.astimezone(UTC)).total_seconds()
    with _sigterm_stops(env):
        return run_scheduled_set(bset, env, now=now, seconds_left=left)


@contextlib.contextmanager
def _sigterm_stops(env: RunEnvironment) -> Iterator[None]:
    """``systemctl stop`` (SIGTERM) interrupts the run cleanly instead of killing it mid-write."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    before = env.stop_requested

    def handler(signum: int, frame: object) -> None:
        received.append(signum)

    old = signal.signal(signal.SIGTERM, handler)
    env.stop_requested = lambda: bool(received) or before()
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)
        env.stop_requested = before
