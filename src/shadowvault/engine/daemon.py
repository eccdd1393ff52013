"""``shadowvault daemon``: run the configured sets when their schedules say, one at a time.

Model:

* Every set with a ``schedule`` has its next :class:`~.timing.PlannedRun`. When its start time has
  come it joins the **repository queue**; the queue runs one session at a time, so two sessions
  never write into one repository together (a configuration names one repository, so one queue
  serves all its sets). Sets due together run in order of start time, then name.
* A queued run that can no longer start inside its window when its turn comes is recorded as
  ``missed``. A run whose firing came while the *same* set was still running follows the set's
  ``overlap``: ``queue`` runs it afterwards (once, however many firings passed), ``skip`` records
  it as ``missed``.
* **Catch-up**: at start, the latest firing since the set's last activity-log row is run once if
  its window is still open, else recorded as ``missed``.
* **Signals**: SIGHUP reloads the configuration (a bad file is reported and the old one kept);
  SIGTERM/SIGINT stop the daemon: an idle daemon exits at once, a running set is interrupted
  cleanly (saved files become a snapshot tagged ``partial``, the activity row says
  ``interrupted``, the repository lock is released).
* **Lock**: :class:`DaemonLock` (``flock`` on a file named after the configuration) makes a
  second daemon on the same configuration refuse to start.

Time comes from an injected :class:`Clock` so tests drive the schedule without waiting.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import signal
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Protocol

from shadowvault.config import BackupSet
from shadowvault.errors import ConfigError, UsageError

from .scheduled import RunEnvironment, RunOutcome, record_missed, run_scheduled_set
from .timing import PlannedRun, Timing, timing_of

__all__ = ["Clock", "Daemon", "DaemonLock", "SystemClock", "daemon_lock_path"]

# Longest sleep: a wall clock that jumps (suspend, NTP) is noticed within this many seconds.
_MAX_SLEEP = 60.0


class Clock(Protocol):
    """Where the daemon gets the time and how it waits (a test clock advances instead)."""

    def now(self) -> datetime:
        """The current time, timezone-aware."""
        ...

    def sleep(self, seconds: float) -> None:
        """Wait up to ``seconds``; may return early after :meth:`wake`."""
        ...

    def wake(self) -> None:
        """End a running :meth:`sleep` early (called from signal handlers)."""
        ...


class SystemClock:
    """The real clock."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def now(self) -> datetime:
        return datetime.now(UTC)

    def sleep(self, seconds: float) -> None:
        self._event.wait(max(0.0, seconds))
        self._event.clear()

    def wake(self) -> None:
        self._event.set()


_: Clock = SystemClock()


def daemon_lock_path(state_dir: Path, config_path: Path) -> Path:
    """The lock file of the daemon of ``config_path`` (one per configuration file)."""
    digest = hashlib.sha256(os.fsencode(os.path.realpath(config_path))).hexdigest()[:16]
    return state_dir / f"daemon-{digest}.lock"


class DaemonLock:
    """An exclusive ``flock`` held while the daemon runs; the kernel drops it if the process dies."""

    def __init__(self, path: Path, config_path: Path) -> None:
        self.path = path
        self.config_path = config_path
        self._fd: int | None = None

    def __enter__(self) -> DaemonLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise UsageError(
                f"a daemon (pid {other}) already runs {self.config_path}: stop it first or use another config"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


@dataclass
class _SetState:
    bset: BackupSet
    timing: Timing
    next: PlannedRun | None
    queued: bool = False
    running_until: datetime | None = None  # when the set's last run ended (overlap detection)
    running_since: datetime | None = None


def _utc(dt: datetime) -> datetime:
    return dt.astimezone(UTC)


class Daemon:
    """The scheduling loop. ``load_sets()`` returns the configured sets (``ConfigError`` if bad)."""

    def __init__(
        self,
        load_sets: Callable[[], list[BackupSet]],
        env: RunEnvironment,
        *,
        clock: Clock | None = None,
        on_run: Callable[[RunOutcome], None] | None = None,
    ) -> None:
        self.load_sets = load_sets
        self.env = env
        self.clock = clock or SystemClock()
        self.on_run = on_run
        self.sets: dict[str, _SetState] = {}
        self.queue: deque[PlannedRun] = deque()
        self._stop = False
        self._reload = False
        env.stop_requested = lambda: self._stop

    # ----- control (signal handlers and tests) -----------------------------------------------

    def request_stop(self) -> None:
        """Stop after (or by cleanly interrupting) the running set."""
        self._stop = True
        self.clock.wake()

    def request_reload(self) -> None:
        """Reload the configuration before the next decision."""
        self._reload = True
        self.clock.wake()

    @property
    def stopping(self) -> bool:
        """True once a stop was requested."""
        return self._stop

    # ----- loop --------------------------------------------------------------------------------

    def run(self) -> None:
        """Load, catch up, then run due sets until stopped (signals installed in the main thread)."""
        with self._signals():
            self._apply(self.load_sets(), self.clock.now(), initial=True)
            self._catch_up(self.clock.now())
            while not self._stop:
                self.step()

    def step(self) -> None:
        """One decision: reload if asked, queue what is due, run one queued set or sleep."""
        if self._reload:
            self._reload = False
            self.reload()
        now = self.clock.now()
        self._enqueue_due(now)
        if self.queue:
            self._execute(self.queue.popleft())
            return
        wake = [s.next.start for s in self.sets.values() if s.next is not None]
        wait = _MAX_SLEEP
        if wake:
            wait = min(wait, max(0.0, (_utc(min(wake, key=_utc)) - _utc(now)).total_seconds()))
        if not self._stop and not self._reload:
            self.clock.sleep(wait)

    def reload(self) -> None:
        """Read the configuration again; a bad one is reported and the current one kept."""
        try:
            self._apply(self.load_sets(), self.clock.now(), initial=False)
        except ConfigError as e:
            self.env.log(f"configuration reload failed, keeping the previous one: {e}")
            return
        self.env.log(f"configuration reloaded: {len(self.sets)} scheduled set(s)")

    def _apply(self, sets: list[BackupSet], now: datetime, *, initial: bool) -> None:
        new: dict[str, _SetState] = {}
        for bset in sets:
            if not bset.schedule:
                continue
            timing = timing_of(bset)
            old = self.sets.get(bset.name)
            if old is not None and old.timing == timing:
                old.bset = bset
                new[bset.name] = old
                continue
            try:
                nxt = timing.next_run(now, self.env.host)
            except ValueError as e:
                raise ConfigError(str(e)) from None
            new[bset.name] = _SetState(bset, timing, nxt)
        self.sets = new
        self.queue = deque(r for r in self.queue if r.set_name in new)
        for s in new.values():
            s.queued = any(r.set_name == s.bset.name for r in self.queue)
        if initial:
            for s in new.values():
                self.env.log(f"set {s.bset.name}: next run {_show(s.next)}")

    def _catch_up(self, now: datetime) -> None:
        """At start: the latest firing missed while the daemon was down runs once, or is ``missed``."""
        for name, s in self.sets.items():
            last = self.env.activity.sessions(name, limit=1)
            if not last:
                continue  # never ran: nothing was missed, the first run is the next firing
            since = max(last[0].started, now - timedelta(days=31))
            run = s.timing.last_run_before(now, self.env.host, since=since)
            if run is None:
                continue
            if run.may_start(now):
                self.env.log(f"set {name}: catching up the run planned for {_show(run)}")
                self.queue.append(run)
                s.queued = True
            else:
                self._missed(run, f"the daemon was not running; the window ended {_local(run.start_by)}")

    def _enqueue_due(self, now: datetime) -> None:
        due: list[PlannedRun] = []
        for s in self.sets.values():
            while s.next is not None and _utc(s.next.start) <= _utc(now):
                run, s.next = s.next, s.timing.next_run(s.next.fire, self.env.host)
                overlapped = (
                    s.running_since is not None
                    and s.running_until is not None
                    and _utc(s.running_since) <= _utc(run.start) < _utc(s.running_until)
                )
                if overlapped and s.timing.overlap == "skip":
                    self._missed(run, "the previous run of the set was still going (overlap = skip)")
                elif s.queued:
                    self.env.log(f"set {s.bset.name}: a run is already queued; {_show(run)} joins it")
                else:
                    due.append(run)
                    s.queued = True
        due.sort(key=lambda r: (_utc(r.start), r.set_name))
        self.queue.extend(due)

    def _execute(self, run: PlannedRun) -> None:
        s = self.sets.get(run.set_name)
        if s is None:
            return
        s.queued = False
        now = self.clock.now()
        if self._stop:
            return
        if not run.may_start(now):
            self._missed(run, f"it could not start before its window ended {_local(run.start_by)}")
            return
        deadline = s.timing.deadline(now)
        left = None if deadline is None else (_utc(deadline) - _utc(now)).total_seconds()
        self.env.log(f"set {run.set_name}: starting (planned {_show(run)})")
        s.running_since = now
        try:
            outcome = run_scheduled_set(s.bset, self.env, now=now, seconds_left=left)
        except Exception as e:  # a bug or an OS error in one run must not end the other sets' schedules
            self.env.log(f"set {run.set_name}: run ended by an unexpected error: {e!r}")
            return
        finally:
            s.running_until = self.clock.now()
        self.env.log(
            f"set {run.set_name}: {outcome.status}, exit code {outcome.exit_code}"
            + (f", snapshot {outcome.snapshot_id[:8]}" if outcome.snapshot_id else "")
        )
        if self.on_run is not None:
            self.on_run(outcome)

    def _missed(self, run: PlannedRun, reason: str) -> None:
        sid = record_missed(self.env.activity, run.set_name, self.env.host, run.fire, reason)
        self.env.log(f"set {run.set_name}: missed the run planned for {_show(run)}: {reason}")
        if self.on_run is not None:
            self.on_run(RunOutcome(run.set_name, "missed", 0, sid))

    @contextlib.contextmanager
    def _signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def stop(signum: int, frame: FrameType | None) -> None:
            self.env.log(f"received {signal.Signals(signum).name}: stopping")
            self.request_stop()

        def reload(signum: int, frame: FrameType | None) -> None:
            self.request_reload()

        old = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        old[signal.SIGHUP] = signal.signal(signal.SIGHUP, reload)
        try:
            yield
        finally:
            for sig, handler in old.items():
                signal.signal(sig, handler)


def _local(dt: datetime) -> str:
    return dt.isoformat(" ", "minutes")


def _show(run: PlannedRun | None) -> str:
    return "never" if run is None else _local(run.start)
