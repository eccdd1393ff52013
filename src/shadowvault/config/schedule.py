"""The timing options of a set: ``schedule``, ``window``, ``stop_at``, ``timezone``.

``schedule`` accepts (case-insensitive, blanks between words)::

    hourly [:MM]                 every hour at minute MM (default :00)
    daily [HH:MM]                every day at HH:MM (default 00:00)
    weekly DAY [HH:MM]           DAY = mon tue wed thu fri sat sun (or the full English name)
    monthly DOM [HH:MM]          DOM = day of the month, 1-31 (months without that day are skipped)
    M H DOM MON DOW              cron: five fields as Debian's cron reads them

The shorthands are rewritten to a cron expression; parsing and evaluation of the expression are
``cronsim``'s (the evaluator healthchecks.io runs for millions of checks), including Debian cron's
day-of-month *or* day-of-week rule and its handling of daylight-saving changes: a job at a fixed
time that falls into the skipped hour runs when the clocks have moved on, one in the repeated hour
runs once. This module only parses; :mod:`shadowvault.engine.timing` plans runs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError
from cronsim.cronsim import Field

__all__ = [
    "SCHEDULE_GRAMMAR",
    "Schedule",
    "Window",
    "cron_fields",
    "parse_schedule",
    "parse_time_of_day",
    "parse_timezone",
    "parse_window",
]

SCHEDULE_GRAMMAR = (
    '"hourly [:MM]", "daily [HH:MM]", "weekly DAY [HH:MM]", "monthly DAY-OF-MONTH [HH:MM]" '
    'or cron "M H DOM MON DOW"'
)

_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_FULL_DAYS = ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")
_TIME = re.compile(r"^(\d{1,2}):(\d{2})$")


@dataclass(frozen=True)
class Schedule:
    """A parsed schedule: the text as written and the five-field cron expression it means."""

    text: str
    cron: str

    def next_after(self, when: datetime) -> datetime:
        """The first firing strictly after ``when``, in ``when``'s time zone (naive stays naive)."""
        try:
            return next(CronSim(self.cron, when))
        except StopIteration:  # cronsim gives up after 50 years without a match
            raise ValueError(f"schedule {self.text!r} never fires") from None

    def matches(self, when: datetime) -> bool:
        """True when the schedule fires in the minute of ``when``."""
        minute = when.replace(second=0, microsecond=0)
        return self.next_after(minute - timedelta(seconds=1)) == minute


def cron_fields(cron: str) -> tuple[list[int], list[int], list[int], list[int], list[int], bool]:
    """The expanded values of a five-field expression as cronsim reads it: minutes, hours, days of
    month, months, weekdays (0 = Sunday, 7 folded into 0), and whether days and weekdays are ORed.

    ``ValueError`` for the cronsim extensions that have no plain value list (``L``, ``W``, ``#``).
    """
    parts = cron.upper().split()
    fields = (Field.MINUTE, Field.HOUR, Field.DAY, Field.MONTH, Field.DOW)
    expanded: list[list[int]] = []
    for text, f in zip(parts, fields, strict=True):
        values = f.parse(text)
        if not all(isinstance(v, int) and v >= 0 for v in values):
            raise ValueError(f"{text!r} (last day, weekday or n-th weekday) has no plain list of values")
        ints = {v for v in values if isinstance(v, int)}
        if f is Field.DOW and 7 in ints:
            ints = (ints - {7}) | {0}
        expanded.append(sorted(ints))
    # Debian cron: a star at the start of either day field makes the two fields ANDed.
    ored = not (parts[2].startswith("*") or parts[4].startswith("*"))
    return expanded[0], expanded[1], expanded[2], expanded[3], expanded[4], ored


def parse_time_of_day(word: str) -> time:
    """``HH:MM`` → ``time``; ``ValueError`` says what is wrong."""
    m = _TIME.match(word.strip())
    if not m:
        raise ValueError(f"{word!r} is not a time of day HH:MM")
    hour, minute = int(m.group(1)), int(m.group(2))
    if hour > 23 or minute > 59:
        raise ValueError(f"{word!r} is not a time of day (00:00-23:59)")
    return time(hour, minute)


@dataclass(frozen=True)
class Window:
    """Hours a run may start in, as local wall-clock times; ``end <= start`` crosses midnight."""

    start: time
    end: time

    @property
    def crosses_midnight(self) -> bool:
        """True for windows such as 22:00-05:00."""
        return self.end <= self.start

    def contains(self, t: time) -> bool:
        """True when the wall-clock time ``t`` lies inside ``[start, end)``."""
        if self.crosses_midnight:
            return t >= self.start or t < self.end
        return self.start <= t < self.end


def parse_window(text: str) -> Window:
    """``"22:00-05:00"`` → :class:`Window`; equal ends are refused (say what you mean)."""
    first, dash, last = text.partition("-")
    if not dash:
        raise ValueError(f"{text!r} is not a window HH:MM-HH:MM")
    w = Window(parse_time_of_day(first), parse_time_of_day(last))
    if w.start == w.end:
        raise ValueError(f"{text!r} is empty: start and end are equal (leave window out for no limit)")
    return w


def parse_timezone(name: str) -> ZoneInfo:
    """An IANA zone name (``Europe/Berlin``) → ``ZoneInfo``; ``ValueError`` when unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{name!r} is not a time zone known here (e.g. Europe/Berlin, UTC)") from None


def _time_word(word: str | None) -> tuple[int, int]:
    if word is None:
        return 0, 0
    t = parse_time_of_day(word)
    return t.hour, t.minute


def _weekday(word: str) -> int:
    if word in _DAYS:
        return _DAYS.index(word)
    if word in _FULL_DAYS:
        return _FULL_DAYS.index(word)
    raise ValueError(f"{word!r} is not a day of the week (mon … sun)")


def _shorthand(kind: str, args: list[str]) -> str:
    """The cron expression of a shorthand."""
    if kind == "hourly":
        if args and (not re.fullmatch(r":\d{2}", args[0]) or int(args[0][1:]) > 59):
            raise ValueError(f"{args[0]!r} is not a minute :MM (:00-:59)")
        return f"{int(args[0][1:]) if args else 0} * * * *"
    if kind == "daily":
        h, m = _time_word(args[0] if args else None)
        return f"{m} {h} * * *"
    if kind == "weekly":
        if not args:
            raise ValueError("'weekly' needs a day, e.g. 'weekly sun 03:00'")
        day = _weekday(args[0])
        h, m = _time_word(args[1] if len(args) > 1 else None)
        return f"{m} {h} * * {day}"
    if not args:
        raise ValueError("'monthly' needs a day of the month, e.g. 'monthly 1 04:00'")
    if not args[0].isdigit() or not 1 <= int(args[0]) <= 31:
        raise ValueError(f"day of month {args[0]!r} is outside 1-31")
    h, m = _time_word(args[1] if len(args) > 1 else None)
    return f"{m} {h} {int(args[0])} * *"


_MAX_ARGS = {"hourly": 1, "daily": 1, "weekly": 2, "monthly": 2}


def parse_schedule(text: str) -> Schedule:
    """Parse a schedule string; ``ValueError`` says what is wrong with it."""
    words = text.strip().lower().split()
    if not words:
        raise ValueError("schedule is empty")
    kind, args = words[0], words[1:]
    if kind in _MAX_ARGS:
        if len(args) > _MAX_ARGS[kind]:
            raise ValueError(f"too many words after {kind!r}")
        cron = _shorthand(kind, args)
    elif len(words) == 5:
        cron = " ".join(words)
    else:
        raise ValueError(f"unknown form {kind!r}")
    try:
        CronSim(cron, datetime(2000, 1, 1))
    except CronSimError as e:
        raise ValueError(f"{e} in {cron!r}") from None
    return Schedule(text, cron)
