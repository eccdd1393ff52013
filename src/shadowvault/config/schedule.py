"""The ``schedule`` option: one small grammar, normalised to cron fields.

Accepted forms (case-insensitive, blanks between words)::

    hourly [:MM]                 every hour at minute MM (default :00)
    daily [HH:MM]                every day at HH:MM (default 00:00)
    weekly DAY [HH:MM]           DAY = mon tue wed thu fri sat sun (or the full English name)
    monthly DOM [HH:MM]          DOM = day of the month, 1-31 (months without that day are skipped)
    M H DOM MON DOW              cron: five fields, each "*", N, N-M, a comma list of those, with
                                 an optional "/STEP"; MON may be jan..dec, DOW 0-7 (0 and 7 are
                                 Sunday) or sun..sat

As in Vixie cron, when both DOM and DOW are restricted (neither is ``*``) a day matches if
*either* matches. Times are local wall-clock times; the scheduler decides about time zones.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

__all__ = ["SCHEDULE_GRAMMAR", "Schedule", "parse_schedule"]

SCHEDULE_GRAMMAR = (
    '"hourly [:MM]", "daily [HH:MM]", "weekly DAY [HH:MM]", "monthly DAY-OF-MONTH [HH:MM]" '
    'or cron "M H DOM MON DOW"'
)

_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_FULL_DAYS = ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_TIME = re.compile(r"^(\d{1,2}):(\d{2})$")
# How far next_after looks ahead: a Feb-29-on-a-given-weekday schedule repeats within 28 years.
_HORIZON_DAYS = 366 * 29


@dataclass(frozen=True)
class Schedule:
    """A parsed schedule as cron field sets; ``weekdays`` uses 0 = Sunday … 6 = Saturday."""

    text: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    days_restricted: bool = False
    weekdays_restricted: bool = False

    def day_matches(self, when: datetime) -> bool:
        """True when the calendar day of ``when`` is a day the schedule runs on."""
        if when.month not in self.months:
            return False
        dom_ok = when.day in self.days
        dow_ok = (when.isoweekday() % 7) in self.weekdays
        if self.days_restricted and self.weekdays_restricted:
            return dom_ok or dow_ok
        return dom_ok and dow_ok

    def matches(self, when: datetime) -> bool:
        """True when the schedule fires in the minute of ``when``."""
        return self.day_matches(when) and when.hour in self.hours and when.minute in self.minutes

    def next_after(self, when: datetime) -> datetime:
        """The first minute strictly after ``when`` at which the schedule fires (same tzinfo)."""
        start = when.replace(second=0, microsecond=0) + timedelta(minutes=1)
        day = start.replace(hour=0, minute=0)
        hours = sorted(self.hours)
        minutes = sorted(self.minutes)
        for offset in range(_HORIZON_DAYS):
            candidate_day = day + timedelta(days=offset)
            if not self.day_matches(candidate_day):
                continue
            for h in hours:
                for m in minutes:
                    t = candidate_day.replace(hour=h, minute=m)
                    if t >= start:
                        return t
        raise ValueError(f"schedule {self.text!r} never fires")  # e.g. "0 0 31 2 *"


def _time_of_day(word: str | None) -> tuple[int, int]:
    if word is None:
        return 0, 0
    m = _TIME.match(word)
    if not m:
        raise ValueError(f"{word!r} is not a time of day HH:MM")
    hour, minute = int(m.group(1)), int(m.group(2))
    if hour > 23 or minute > 59:
        raise ValueError(f"{word!r} is not a time of day (00:00-23:59)")
    return hour, minute


def _weekday(word: str) -> int:
    if word in _DAYS:
        return _DAYS.index(word)
    if word in _FULL_DAYS:
        return _FULL_DAYS.index(word)
    raise ValueError(f"{word!r} is not a day of the week (mon … sun)")


def _field(text: str, lo: int, hi: int, names: tuple[str, ...], name_base: int, what: str) -> frozenset[int]:
    """Expand one cron field into the set of values it selects."""
    values: set[int] = set()
    for item in text.split(","):
        rng, _, step_text = item.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise ValueError(f"{what}: step {step_text!r} must be a positive number")
            step = int(step_text)
        if rng == "*":
            start, end = lo, hi
        else:
            first, dash, last = rng.partition("-")
            start = _cron_number(first, lo, hi, names, name_base, what)
            end = _cron_number(last, lo, hi, names, name_base, what) if dash else start
            if step_text and not dash:
                end = hi  # "5/15" means from 5 to the end in steps of 15
            if end < start:
                raise ValueError(f"{what}: range {rng!r} runs backwards")
        values.update(range(start, end + 1, step))
    return frozenset(values)


def _cron_number(word: str, lo: int, hi: int, names: tuple[str, ...], name_base: int, what: str) -> int:
    if word in names:
        return names.index(word) + name_base
    if not word.isdigit():
        raise ValueError(f"{what}: {word!r} is not a number")
    value = int(word)
    if not lo <= value <= hi:
        raise ValueError(f"{what}: {value} is outside {lo}-{hi}")
    return value


def _cron(text: str, fields: list[str]) -> Schedule:
    minute, hour, dom, month, dow = fields
    weekdays = _field(dow, 0, 7, _DAYS, 0, "day of week")
    if 7 in weekdays:  # both 0 and 7 mean Sunday
        weekdays = (weekdays - {7}) | {0}
    return Schedule(
        text=text,
        minutes=_field(minute, 0, 59, (), 0, "minute"),
        hours=_field(hour, 0, 23, (), 0, "hour"),
        days=_field(dom, 1, 31, (), 0, "day of month"),
        months=_field(month, 1, 12, _MONTHS, 1, "month"),
        weekdays=weekdays,
        days_restricted=not dom.startswith("*"),
        weekdays_restricted=not dow.startswith("*"),
    )


_ALL_HOURS = frozenset(range(24))
_ALL_DAYS = frozenset(range(1, 32))
_ALL_MONTHS = frozenset(range(1, 13))
_ALL_WEEKDAYS = frozenset(range(7))


def parse_schedule(text: str) -> Schedule:
    """Parse a schedule string; ``ValueError`` says what is wrong with it."""
    words = text.strip().lower().split()
    if not words:
        raise ValueError("schedule is empty")
    kind, args = words[0], words[1:]

    def expect(count_max: int) -> None:
        if len(args) > count_max:
            raise ValueError(f"too many words after {kind!r}")

    if kind == "hourly":
        expect(1)
        minute = 0
        if args:
            if not re.fullmatch(r":\d{2}", args[0]) or int(args[0][1:]) > 59:
                raise ValueError(f"{args[0]!r} is not a minute :MM (:00-:59)")
            minute = int(args[0][1:])
        return Schedule(text, frozenset({minute}), _ALL_HOURS, _ALL_DAYS, _ALL_MONTHS, _ALL_WEEKDAYS)
    if kind == "daily":
        expect(1)
        h, m = _time_of_day(args[0] if args else None)
        return Schedule(text, frozenset({m}), frozenset({h}), _ALL_DAYS, _ALL_MONTHS, _ALL_WEEKDAYS)
    if kind == "weekly":
        if not args:
            raise ValueError("'weekly' needs a day, e.g. 'weekly sun 03:00'")
        expect(2)
        day = _weekday(args[0])
        h, m = _time_of_day(args[1] if len(args) > 1 else None)
        return Schedule(
            text, frozenset({m}), frozenset({h}), _ALL_DAYS, _ALL_MONTHS, frozenset({day}), False, True
        )
    if kind == "monthly":
        if not args:
            raise ValueError("'monthly' needs a day of the month, e.g. 'monthly 1 04:00'")
        expect(2)
        dom = _cron_number(args[0], 1, 31, (), 0, "day of month")
        h, m = _time_of_day(args[1] if len(args) > 1 else None)
        return Schedule(
            text, frozenset({m}), frozenset({h}), frozenset({dom}), _ALL_MONTHS, _ALL_WEEKDAYS, True, False
        )
    if len(words) == 5:
        return _cron(text, words)
    raise ValueError(f"unknown form {kind!r}")
