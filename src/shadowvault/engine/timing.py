"""When a set runs: schedule ∩ window, a fixed jitter, and the ``stop_at`` deadline (pure).

Everything here takes the current time as an argument, so the daemon, ``schedule`` and the tests
share one computation with a controlled clock. Times are aware datetimes; comparisons are made in
UTC because Python compares two datetimes of the *same* zone by wall-clock time, which is wrong
across a daylight-saving change.

* A **firing** is a time the cron expression matches, in the set's zone. Firings outside the
  ``window`` are not runs at all (``hourly`` with ``window = "22:00-05:00"`` runs at night only).
* A **run** starts at firing + jitter and may start until the window that holds the firing ends
  (``start_by``); a run that could not start by then (daemon down, queue busy) is *missed*.
  Without a window a run may start until the next firing.
* **Jitter** is a delay in ``[0, jitter]`` seconds derived from a hash of host and set name: runs
  of many hosts spread out, yet each set starts at the same offset every time.
* The **deadline** is the first ``stop_at`` wall-clock time after the run started.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from shadowvault.config import BackupSet
from shadowvault.config.schedule import Schedule, Window, parse_schedule, parse_time_of_day, parse_window

__all__ = ["PlannedRun", "Timing", "jitter_offset", "local_zone", "timing_of"]

# Firings looked at for one that lies inside the window: a minutely schedule with a one-minute
# window needs up to a day of them.
_MAX_FIRINGS = 2000


def local_zone() -> tzinfo:
    """The system's zone with its DST rules ($TZ, then /etc/localtime), UTC when unknown."""
    candidates: list[str] = []
    if os.environ.get("TZ"):
        candidates.append(os.environ["TZ"].lstrip(":"))
    try:
        target = os.readlink("/etc/localtime")
        if "zoneinfo/" in target:
            candidates.append(target.split("zoneinfo/", 1)[1])
    except OSError:
        pass
    with contextlib.suppress(OSError):
        candidates.append(Path("/etc/timezone").read_text().strip())
    for name in candidates:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            continue
    return UTC


def jitter_offset(set_name: str, host: str, jitter: int) -> timedelta:
    """The set's fixed delay on this host: uniform in ``[0, jitter]`` seconds over hosts and sets."""
    if jitter <= 0:
        return timedelta(0)
    digest = hashlib.sha256(f"{host}\0{set_name}".encode()).digest()
    return timedelta(seconds=int.from_bytes(digest[:8], "big") % (jitter + 1))


@dataclass(frozen=True)
class PlannedRun:
    """One run of a set: the firing, when it starts (firing + jitter) and until when it may."""

    set_name: str
    fire: datetime
    start: datetime
    start_by: datetime

    def may_start(self, now: datetime) -> bool:
        """True while the run may still start (``now`` before ``start_by``)."""
        return _utc(now) < _utc(self.start_by)


def _utc(dt: datetime) -> datetime:
    return dt.astimezone(UTC)


@dataclass(frozen=True)
class Timing:
    """The timing options of one set, parsed."""

    set_name: str
    schedule: Schedule | None
    window: Window | None
    stop_at: time | None
    jitter: int
    zone: tzinfo
    overlap: str = "queue"

    def _local(self, when: datetime) -> datetime:
        return when.astimezone(self.zone)

    def in_window(self, when: datetime) -> bool:
        """True when ``when`` lies inside the window (always, without one)."""
        return self.window is None or self.window.contains(self._local(when).time().replace(tzinfo=None))

    def window_end(self, fire: datetime) -> datetime | None:
        """The end of the window period that holds ``fire`` (None without a window)."""
        if self.window is None:
            return None
        local = self._local(fire)
        day = local.date()
        if self.window.crosses_midnight and local.time() >= self.window.start:
            day += timedelta(days=1)  # 23:00 in 22:00-05:00 belongs to the window ending tomorrow
        end = datetime.combine(day, self.window.end, tzinfo=self.zone)
        # A wall time that does not exist (DST gap) is taken as the instant after the gap.
        return end.astimezone(UTC).astimezone(self.zone)

    def _fire_after(self, after: datetime) -> datetime:
        """The next firing strictly after ``after`` inside the window."""
        assert self.schedule is not None
        t = self._local(after)
        for _ in range(_MAX_FIRINGS):
            t = self.schedule.next_after(t)
            if self.in_window(t):
                return t
        raise ValueError(
            f"set {self.set_name!r}: schedule {self.schedule.text!r} never fires inside its window"
        )

    def _planned(self, fire: datetime, host: str) -> PlannedRun:
        assert self.schedule is not None
        end = self.window_end(fire)
        start_by = end if end is not None else self.schedule.next_after(fire)
        start = fire + jitter_offset(self.set_name, host, self.jitter)
        latest = _utc(start_by) - timedelta(seconds=1)
        if _utc(start) > latest:  # a jitter longer than the window would make every run missed
            start = max(_utc(fire), latest).astimezone(self.zone)
        return PlannedRun(self.set_name, fire, self._local(start), start_by)

    def next_run(self, after: datetime, host: str) -> PlannedRun | None:
        """The first run whose firing is strictly after ``after`` (None: no schedule)."""
        if self.schedule is None:
            return None
        return self._planned(self._fire_after(after), host)

    def next_runs(self, after: datetime, host: str, count: int) -> list[PlannedRun]:
        """The next ``count`` runs after ``after``."""
        runs: list[PlannedRun] = []
        while len(runs) < count:
            run = self.next_run(runs[-1].fire if runs else after, host)
            if run is None:
                break
            runs.append(run)
        return runs

    def last_run_before(self, now: datetime, host: str, *, since: datetime) -> PlannedRun | None:
        """The latest run whose firing lies in ``(since, now]``, or None (for catching up)."""
        if self.schedule is None:
            return None
        latest: PlannedRun | None = None
        t = since
        for _ in range(_MAX_FIRINGS * 10):
            run = self.next_run(t, host)
            if run is None or _utc(run.fire) > _utc(now):
                break
            latest, t = run, run.fire
        else:  # a very long downtime of a frequent schedule: only the latest firings matter
            return self.last_run_before(now, host, since=now - timedelta(days=2))
        return latest

    def deadline(self, started: datetime) -> datetime | None:
        """The first ``stop_at`` after ``started`` (None without ``stop_at``)."""
        if self.stop_at is None:
            return None
        local = self._local(started)
        end = datetime.combine(local.date(), self.stop_at, tzinfo=self.zone)
        if _utc(end) <= _utc(started):
            end = datetime.combine(local.date() + timedelta(days=1), self.stop_at, tzinfo=self.zone)
        return end.astimezone(UTC).astimezone(self.zone)

    def window_seconds(self) -> float | None:
        """Length of the window in seconds (wall-clock), for overrun estimates."""
        if self.window is None:
            return None
        start = self.window.start.hour * 3600 + self.window.start.minute * 60
        end = self.window.end.hour * 3600 + self.window.end.minute * 60
        return float((end - start) % 86400)


def timing_of(bset: BackupSet, zone: tzinfo | None = None) -> Timing:
    """The parsed timing of a validated set; ``zone`` is used when the set names none."""
    return Timing(
        set_name=bset.name,
        schedule=parse_schedule(bset.schedule) if bset.schedule else None,
        window=parse_window(bset.window) if bset.window else None,
        stop_at=parse_time_of_day(bset.stop_at) if bset.stop_at else None,
        jitter=bset.jitter,
        zone=ZoneInfo(bset.timezone) if bset.timezone else (zone or local_zone()),
        overlap=bset.overlap,
    )
