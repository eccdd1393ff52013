"""What ``shadowvault schedule`` shows: next runs per set and whether recent runs fit their time.

A set's **budget** is the time a run has: from its planned start to ``stop_at`` when set, else
to the end of its window, else to the next firing. Recent run durations come from the activity
log; a set is flagged *likely to overrun* when its longest recent run took more than 90 % of the
budget, or its latest run was cut short by ``stop_at``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from shadowvault.config import BackupSet

from .activity import ActivityLog
from .timing import PlannedRun, timing_of

__all__ = ["SetSchedule", "schedule_overview", "span"]

_RECENT = 5
_OVERRUN_SHARE = 0.9


@dataclass(frozen=True)
class SetSchedule:
    """One set's row: its zone, next runs, recent durations, budget and the overrun verdict."""

    name: str
    schedule: str
    zone: str
    window: str | None
    stop_at: str | None
    next_runs: list[PlannedRun]
    recent: list[timedelta]
    budget: timedelta | None
    overrun: str | None  # why a run is likely to overrun, or None


def _budget(bset: BackupSet, run: PlannedRun | None) -> timedelta | None:
    if run is None:
        return None
    timing = timing_of(bset)
    end = timing.deadline(run.start) or run.start_by
    return end.astimezone(UTC) - run.start.astimezone(UTC)


def schedule_overview(
    sets: list[BackupSet], activity: ActivityLog | None, now: datetime, host: str, count: int
) -> list[SetSchedule]:
    """Rows for every set with a schedule (``activity`` None: no history yet)."""
    rows: list[SetSchedule] = []
    for bset in sets:
        if not bset.schedule:
            continue
        timing = timing_of(bset)
        runs = timing.next_runs(now, host, count)
        history = activity.sessions(bset.name, limit=_RECENT * 3) if activity is not None else []
        finished = [r for r in history if r.ended is not None and r.status in ("completed", "partial")]
        recent = [r.ended - r.started for r in finished[:_RECENT] if r.ended is not None]
        budget = _budget(bset, runs[0] if runs else None)
        overrun = None
        if finished and finished[0].status == "partial" and any("stop_at" in w for w in finished[0].warnings):
            overrun = "the last run was stopped by stop_at"
        elif recent and budget is not None and max(recent) > budget * _OVERRUN_SHARE:
            overrun = f"a recent run took {span(max(recent))} of a {span(budget)} budget"
        rows.append(
            SetSchedule(
                name=bset.name,
                schedule=bset.schedule,
                zone=str(timing.zone),
                window=bset.window,
                stop_at=bset.stop_at,
                next_runs=runs,
                recent=recent,
                budget=budget,
                overrun=overrun,
            )
        )
    return rows


def span(d: timedelta) -> str:
    """A duration as people read it: ``45s``, ``12m``, ``2h05m``."""
    minutes = int(d.total_seconds() // 60)
    if minutes < 60:
        return f"{minutes}m" if minutes else f"{int(d.total_seconds())}s"
    return f"{minutes // 60}h{minutes % 60:02d}m"
