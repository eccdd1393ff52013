"""Retention policy: which snapshots of a group ``forget`` keeps, decided exactly as restic does.

Pure functions over snapshots (no I/O). The rules, as restic's ``ApplyPolicy`` has them:

- A group's snapshots are taken newest first. ``keep-last N`` keeps the first N; ``keep-hourly``,
  ``-daily``, ``-weekly`` (ISO weeks), ``-monthly``, ``-yearly N`` keep a snapshot when it opens a
  period not seen yet, until N periods were kept: periods are counted only where snapshots
  exist, so "7 daily" means the newest snapshot of each of the 7 newest days that have one.
- Periods are read on the wall clock of the offset each snapshot's time was written with (a
  snapshot written at 23:30+02:00 belongs to that day, whatever the zone of the reader).
- ``keep-within D`` keeps everything newer than the newest snapshot (not in the future) minus D,
  where D is years, months, days and hours applied on the calendar (Go's ``AddDate``: in the
  reader's local zone when the newest snapshot was written in it, DST included). The
  ``keep-within-<period> D`` rules keep one snapshot per period inside that window.
- ``keep-tag a,b`` keeps snapshots carrying all of a and b (an empty tag matches untagged ones).
- ``Rules.RESTIC_0_16`` (restic 0.16 and later, the default) also keeps the oldest snapshot of a
  group for each rule that still has budget left, and accepts -1 as "unlimited";
  ``Rules.RESTIC_0_14`` decides as restic 0.14 does, which has neither.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from shadowvault.repo.files.snapshot import Snapshot

_NS = 1_000_000_000
_EPOCH = dt.datetime(1970, 1, 1)
UNLIMITED = -1


class Rules(enum.Enum):
    """Which restic release's decisions to reproduce."""

    RESTIC_0_14 = "0.14"
    RESTIC_0_16 = "0.16"


@dataclass(frozen=True)
class Duration:
    """restic's calendar duration (``1y5m7d2h``); months and years follow the calendar."""

    years: int = 0
    months: int = 0
    days: int = 0
    hours: int = 0

    def zero(self) -> bool:
        """True when every part is 0 (the rule is off)."""
        return not (self.years or self.months or self.days or self.hours)

    def __str__(self) -> str:
        parts = [(self.years, "y"), (self.months, "m"), (self.days, "d"), (self.hours, "h")]
        return "".join(f"{n}{unit}" for n, unit in parts if n)


_DURATION_PART = re.compile(r"(-?)(\d+)([ymdh])")


def parse_duration(text: str) -> Duration:
    """``6y5m234d37h`` → Duration; ValueError naming the problem (a later unit repeats replace)."""
    rest = text.strip()
    values = {"y": 0, "m": 0, "d": 0, "h": 0}
    while rest:
        m = _DURATION_PART.match(rest)
        if m is None:
            raise ValueError(f"invalid duration {text!r}: use numbers with units y, m, d, h (e.g. 1y6m7d2h)")
        sign, digits, unit = m.groups()
        values[unit] = -int(digits) if sign else int(digits)
        rest = rest[m.end() :]
    return Duration(values["y"], values["m"], values["d"], values["h"])


@dataclass(frozen=True)
class KeepPolicy:
    """How many snapshots to keep per rule; 0 means the rule is off, -1 unlimited (0.16 rules)."""

    last: int = 0
    hourly: int = 0
    daily: int = 0
    weekly: int = 0
    monthly: int = 0
    yearly: int = 0
    within: Duration = Duration()
    within_hourly: Duration = Duration()
    within_daily: Duration = Duration()
    within_weekly: Duration = Duration()
    within_monthly: Duration = Duration()
    within_yearly: Duration = Duration()
    tags: tuple[tuple[str, ...], ...] = ()
    """Tag lists: a snapshot carrying every tag of one list is kept."""

    def counts(self) -> tuple[int, ...]:
        """The six counted rules, newest-first order of restic: last, hourly … yearly."""
        return (self.last, self.hourly, self.daily, self.weekly, self.monthly, self.yearly)

    def windows(self) -> tuple[Duration, ...]:
        """The five ``keep-within-<period>`` durations, hourly … yearly."""
        return (
            self.within_hourly,
            self.within_daily,
            self.within_weekly,
            self.within_monthly,
            self.within_yearly,
        )

    def empty(self) -> bool:
        """True when no rule is set (forget then refuses to decide anything)."""
        return (
            not any(self.counts())
            and self.within.zero()
            and all(d.zero() for d in self.windows())
            and not self.tags
        )

    def describe(self) -> str:
        """``keep 2 latest, 7 daily snapshots and all snapshots within 1m of the newest``."""
        names = ("latest", "hourly", "daily", "weekly", "monthly", "yearly")
        keeps = [
            f"{n} {name}" if n > 0 else f"all {name}"
            for n, name in zip(self.counts(), names, strict=True)
            if n
        ]
        text = f"{', '.join(keeps)} snapshots" if keeps else ""
        periods = ("hourly", "daily", "weekly", "monthly", "yearly")
        windows = [
            f"{p} snapshots within {d}" for d, p in zip(self.windows(), periods, strict=True) if not d.zero()
        ]
        if windows:
            text = ", ".join(filter(None, [text, *windows]))
        if self.tags:
            lists = " ".join("[" + ", ".join(t) + "]" for t in self.tags)
            text += (" and " if text else "") + f"all snapshots with tags [{lists}]"
        if not self.within.zero():
            text += (" and " if text else "") + f"all snapshots within {self.within} of the newest"
        return "keep " + text


@dataclass(frozen=True)
class GroupKey:
    """What a group's snapshots share: empty host / None paths or tags when not grouped by them."""

    hostname: str = ""
    paths: tuple[str, ...] | None = None
    tags: tuple[str, ...] | None = None

    def describe(self) -> str:
        """``host "h", paths [/a /b]`` for headers and messages."""
        parts = []
        if self.hostname:
            parts.append(f'host "{self.hostname}"')
        if self.paths is not None:
            parts.append(f"paths [{' '.join(self.paths)}]")
        if self.tags is not None:
            parts.append(f"tags [{','.join(self.tags)}]")
        return ", ".join(parts) or "all snapshots"


GROUP_FIELDS = ("host", "paths", "tags")


def parse_group_by(text: str) -> frozenset[str]:
    """``host,paths`` → {"host", "paths"}; singular forms accepted; "" groups nothing."""
    chosen: set[str] = set()
    for part in text.split(","):
        word = part.strip()
        if not word:
            continue
        canonical = {"host": "host", "hosts": "host", "path": "paths", "paths": "paths"}
        canonical |= {"tag": "tags", "tags": "tags"}
        if word not in canonical:
            raise ValueError(f"unknown grouping {word!r}: use host, paths and/or tags separated by commas")
        chosen.add(canonical[word])
    return frozenset(chosen)


def group_key(snap: Snapshot, group_by: frozenset[str]) -> GroupKey:
    """The group a snapshot belongs to."""
    return GroupKey(
        hostname=snap.hostname if "host" in group_by else "",
        paths=tuple(sorted(snap.paths)) or None if "paths" in group_by else None,
        tags=tuple(sorted(snap.tags)) or None if "tags" in group_by else None,
    )


def group_snapshots(
    snapshots: Sequence[tuple[str, Snapshot]], group_by: frozenset[str]
) -> dict[GroupKey, list[tuple[str, Snapshot]]]:
    """Snapshots by group, each group in the order given."""
    groups: dict[GroupKey, list[tuple[str, Snapshot]]] = {}
    for sid, snap in snapshots:
        groups.setdefault(group_key(snap, group_by), []).append((sid, snap))
    return groups


@dataclass(frozen=True)
class KeepReason:
    """Why one snapshot is kept, and the counts left after it (restic's ``reasons`` entries)."""

    snapshot_id: str
    matches: tuple[str, ...]
    counters: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class GroupDecision:
    """One group's outcome; ``keep`` and ``remove`` newest first, ``reasons`` parallel to ``keep``."""

    key: GroupKey
    keep: list[tuple[str, Snapshot]]
    remove: list[tuple[str, Snapshot]]
    reasons: list[KeepReason]


def local_offset(seconds: int) -> int:
    """UTC offset of this process's local zone (``TZ``) at an instant."""
    try:
        return time.localtime(seconds).tm_gmtoff
    except (OverflowError, OSError, ValueError):
        return 0


def wall_clock(snap: Snapshot) -> dt.datetime:
    """The snapshot's time on the clock of the offset it was written with."""
    seconds = snap.time // _NS
    offset = snap.time_offset if snap.time_offset is not None else local_offset(seconds)
    return _EPOCH + dt.timedelta(seconds=seconds + offset)


def within_cutoff(
    latest: Snapshot, d: Duration, offset_at: Callable[[int], int] = local_offset
) -> int | None:
    """The instant (ns) a snapshot must be newer than for ``keep-within d``; None: no bound.

    Go subtracts years, months and days on the wall clock of ``latest``'s location, normalising
    like ``time.Date`` (31 March minus a month is 3 March), then the hours as elapsed time. That
    location is the local zone when the snapshot's offset is the local one at that instant
    (Go's parser picks it then), else a fixed offset; a wall clock in the local zone is turned
    back into an instant the way ``time.Date`` does around DST changes.
    """
    seconds, frac = divmod(latest.time, _NS)
    offset = latest.time_offset if latest.time_offset is not None else offset_at(seconds)
    in_local = offset != 0 and offset == offset_at(seconds)
    wall = _EPOCH + dt.timedelta(seconds=seconds + offset)
    year, month0 = divmod(wall.month - 1 - d.months, 12)
    year += wall.year - d.years
    try:
        day = dt.date(year, month0 + 1, 1) + dt.timedelta(days=wall.day - d.days - 1)
    except (ValueError, OverflowError):
        return None  # before year 1: every snapshot is newer
    wall_seconds = (day - _EPOCH.date()).days * 86400 + wall.hour * 3600 + wall.minute * 60 + wall.second
    if in_local:
        guess = offset_at(wall_seconds)
        instant = wall_seconds - offset_at(wall_seconds - guess)
    else:
        instant = wall_seconds - offset
    return (instant - d.hours * 3600) * _NS + frac


_COUNTED: tuple[tuple[str, str, Callable[[dt.datetime, int], object]], ...] = (
    ("last", "last snapshot", lambda _t, nr: nr),
    ("hourly", "hourly snapshot", lambda t, _nr: (t.year, t.month, t.day, t.hour)),
    ("daily", "daily snapshot", lambda t, _nr: (t.year, t.month, t.day)),
    ("weekly", "weekly snapshot", lambda t, _nr: tuple(t.isocalendar())[:2]),
    ("monthly", "monthly snapshot", lambda t, _nr: (t.year, t.month)),
    ("yearly", "yearly snapshot", lambda t, _nr: t.year),
)
_WINDOWED = _COUNTED[1:]


def has_tags(snap: Snapshot, wanted: Sequence[str]) -> bool:
    """restic's ``HasTags``: every tag present; an empty tag matches a snapshot without tags."""
    for tag in wanted:
        if tag == "" and not snap.tags:
            return True
        if tag not in snap.tags:
            return False
    return True


def decide_group(
    key: GroupKey,
    members: Sequence[tuple[str, Snapshot]],
    policy: KeepPolicy,
    *,
    rules: Rules = Rules.RESTIC_0_16,
    now_ns: int | None = None,
    offset_at: Callable[[int], int] = local_offset,
) -> GroupDecision:
    """Apply ``policy`` to one group (any order given; equal times keep the given order)."""
    ordered = sorted(members, key=lambda m: -m[1].time)
    if policy.empty():
        everything = [KeepReason(sid, ("policy is empty",)) for sid, _ in ordered]
        return GroupDecision(key, list(ordered), [], everything)
    now = time.time_ns() if now_ns is None else now_ns
    latest = max((s for _, s in ordered if s.time < now), key=lambda s: s.time, default=None)

    def cutoff(d: Duration) -> int | None:
        return None if latest is None else within_cutoff(latest, d, offset_at)

    modern = rules is Rules.RESTIC_0_16
    budget = list(policy.counts())
    last_seen: list[object] = [None] * len(_COUNTED)
    window_cut = [None if d.zero() else cutoff(d) for d in policy.windows()]
    window_seen: list[object] = [None] * len(_WINDOWED)
    within_cut = None if policy.within.zero() else cutoff(policy.within)
    keep: list[tuple[str, Snapshot]] = []
    remove: list[tuple[str, Snapshot]] = []
    reasons: list[KeepReason] = []
    oldest_nr = len(ordered) - 1
    for nr, (sid, snap) in enumerate(ordered):
        matches: list[str] = []
        for wanted in policy.tags:
            if has_tags(snap, wanted):
                matches.append("has tags [" + ", ".join(wanted) + "]")
        if not policy.within.zero() and (within_cut is None or snap.time > within_cut):
            matches.append(f"within {policy.within}")
        wall = wall_clock(snap)
        for i, (_name, reason, bucket_of) in enumerate(_COUNTED):
            if budget[i] > 0 or (modern and budget[i] == UNLIMITED):
                value = bucket_of(wall, nr)
                oldest = modern and nr == oldest_nr
                if value != last_seen[i] or oldest:
                    matches.append(f"oldest {reason}" if value == last_seen[i] else reason)
                    last_seen[i] = value
                    if budget[i] > 0:
                        budget[i] -= 1
        for i, (_name, reason, bucket_of) in enumerate(_WINDOWED):
            d = policy.windows()[i]
            if d.zero():
                continue
            cut = window_cut[i]
            if cut is None or snap.time > cut:
                value = bucket_of(wall, nr)
                oldest = modern and nr == oldest_nr
                if value != window_seen[i] or oldest:
                    base = reason.replace("snapshot", "within")
                    text = f"oldest {base}" if value == window_seen[i] else base
                    matches.append(f"{text} {d}")
                    window_seen[i] = value
        if matches:
            keep.append((sid, snap))
            counters = {name: budget[i] for i, (name, _, _) in enumerate(_COUNTED) if budget[i]}
            reasons.append(KeepReason(sid, tuple(matches), counters))
        else:
            remove.append((sid, snap))
    return GroupDecision(key, keep, remove, reasons)


def apply_policy(
    snapshots: Sequence[tuple[str, Snapshot]],
    policy: KeepPolicy,
    *,
    group_by: frozenset[str] = frozenset({"host", "paths"}),
    rules: Rules = Rules.RESTIC_0_16,
    now_ns: int | None = None,
) -> list[GroupDecision]:
    """Group ``snapshots`` and decide each group; groups in a stable order (by key)."""
    groups = group_snapshots(snapshots, group_by)
    ordered = sorted(groups.items(), key=lambda kv: (kv[0].hostname, kv[0].paths or (), kv[0].tags or ()))
    return [decide_group(k, members, policy, rules=rules, now_ns=now_ns) for k, members in ordered]
