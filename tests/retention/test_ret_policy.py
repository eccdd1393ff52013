"""The retention rules one by one, including what the differential test cannot reach with
restic 0.14 (the oldest-snapshot rule and unlimited counts of restic 0.16+)."""

from __future__ import annotations

import datetime as dt
import os
import time
import zoneinfo
from collections.abc import Iterator

import pytest

from shadowvault.repo import Snapshot
from shadowvault.repo.files import jsonfmt
from shadowvault.repo.policy import (
    Duration,
    GroupKey,
    KeepPolicy,
    Rules,
    apply_policy,
    decide_group,
    parse_duration,
    parse_group_by,
    within_cutoff,
)

NS = 10**9
HOUR = 3600 * NS
DAY = 24 * HOUR
T0 = 1_767_225_600 * NS  # 2026-01-01T00:00:00Z (a Thursday, ISO week 1 of 2026)
OLD = Rules.RESTIC_0_14


def snap(t: int, host: str = "h", tags: list[str] | None = None, offset: int = 0) -> Snapshot:
    return Snapshot(time=t, tree=b"\0" * 32, paths=["/p"], hostname=host, tags=tags or [], time_offset=offset)


def kept(snaps: list[tuple[str, Snapshot]], policy: KeepPolicy, rules: Rules = OLD) -> list[str]:
    (g,) = apply_policy(snaps, policy, rules=rules)
    return [sid for sid, _ in g.keep]


EVERY_6H = [(f"{i:02d}", snap(T0 + i * 6 * HOUR)) for i in range(12)]  # 4 a day, 3 days


def test_counted_rules() -> None:
    assert kept(EVERY_6H, KeepPolicy(last=2)) == ["11", "10"]
    assert kept(EVERY_6H, KeepPolicy(daily=2)) == ["11", "07"]  # newest of the two newest days
    assert kept(EVERY_6H, KeepPolicy(hourly=3)) == ["11", "10", "09"]
    assert kept(EVERY_6H, KeepPolicy(weekly=5)) == [
        "11"
    ]  # all in one ISO week: only periods that exist count


def test_oldest_is_kept_while_budget_is_left_only_in_new_rules() -> None:
    assert kept(EVERY_6H, KeepPolicy(weekly=5)) == ["11"]
    assert kept(EVERY_6H, KeepPolicy(weekly=5), Rules.RESTIC_0_16) == ["11", "00"]
    (g,) = apply_policy(EVERY_6H, KeepPolicy(weekly=5), rules=Rules.RESTIC_0_16)
    assert g.reasons[-1].matches == ("oldest weekly snapshot",)
    # A rule whose budget is used up does not keep the oldest.
    assert kept(EVERY_6H, KeepPolicy(last=2), Rules.RESTIC_0_16) == ["11", "10"]
    # -1 is unlimited in the new rules (every day, and the oldest), and ignored by restic 0.14.
    assert kept(EVERY_6H, KeepPolicy(daily=-1), Rules.RESTIC_0_16) == ["11", "07", "03", "00"]
    assert kept(EVERY_6H, KeepPolicy(last=1, daily=-1)) == ["11"]


def test_iso_weeks_cross_the_year() -> None:
    # 2020-12-31 (Thu) and 2021-01-01 (Fri) are both in ISO week 53 of 2020.
    t1 = int(dt.datetime(2020, 12, 31, 12, tzinfo=dt.UTC).timestamp()) * NS
    t2 = t1 + DAY
    t3 = t1 + 4 * DAY  # Monday 2021-01-04: week 1 of 2021
    snaps = [("a", snap(t1)), ("b", snap(t2)), ("c", snap(t3))]
    assert kept(snaps, KeepPolicy(weekly=3)) == ["c", "b"]
    assert kept(snaps, KeepPolicy(yearly=3)) == ["c", "a"]


def test_periods_use_the_offset_the_time_was_written_with() -> None:
    # 23:30 UTC is already the next day at +02:00.
    t = T0 - 30 * 60 * NS
    a = ("a", snap(t - HOUR, offset=0))
    b = ("b", snap(t, offset=2 * 3600))
    assert kept([a, b], KeepPolicy(daily=5)) == ["b", "a"]
    assert kept([("a", snap(t - HOUR)), ("b", snap(t))], KeepPolicy(daily=5)) == ["b"]


def test_within_and_tags() -> None:
    assert kept(EVERY_6H, KeepPolicy(within=Duration(days=1))) == ["11", "10", "09", "08"]
    assert kept(EVERY_6H, KeepPolicy(within_daily=Duration(days=2))) == ["11", "07"]
    tagged = [*EVERY_6H, ("t", snap(T0 - 100 * DAY, tags=["keep", "x"]))]
    assert kept(tagged, KeepPolicy(last=1, tags=(("keep",),))) == ["11", "t"]
    assert kept(tagged, KeepPolicy(last=1, tags=(("keep", "y"),))) == ["11"]
    assert kept(tagged, KeepPolicy(last=1, tags=(("",),))) == [s for s, _ in EVERY_6H][::-1]  # untagged


def test_future_snapshots_do_not_move_the_window() -> None:
    future = [*EVERY_6H, ("f", snap(T0 + 1000 * DAY))]
    (g,) = apply_policy(future, KeepPolicy(within=Duration(hours=12)), now_ns=T0 + 3 * DAY)
    assert [s for s, _ in g.keep] == ["f", "11", "10"]


def test_groups_and_empty_policy() -> None:
    snaps = [("a1", snap(T0, "a")), ("a2", snap(T0 + 1, "a")), ("b1", snap(T0, "b"))]
    groups = apply_policy(snaps, KeepPolicy(last=1), rules=OLD)
    assert [(g.key.hostname, [s for s, _ in g.keep]) for g in groups] == [("a", ["a2"]), ("b", ["b1"])]
    (one,) = apply_policy(snaps, KeepPolicy(last=1), group_by=frozenset())
    assert one.key == GroupKey() and [s for s, _ in one.keep] == ["a2"]
    g = decide_group(GroupKey(), snaps, KeepPolicy())
    assert len(g.keep) == 3 and g.reasons[0].matches == ("policy is empty",)
    assert parse_group_by("host,path,tag") == {"host", "paths", "tags"}
    with pytest.raises(ValueError, match="unknown grouping"):
        parse_group_by("hosts,colour")


def test_duration_parsing() -> None:
    assert parse_duration("1y2m3d4h") == Duration(1, 2, 3, 4)
    assert parse_duration(" 5d ") == Duration(days=5) and str(Duration(1, 0, 2, 0)) == "1y2d"
    assert parse_duration("2d3d") == Duration(days=3)  # a repeated unit replaces, as in restic
    for bad in ("5", "5w", "d", "1.5d"):
        with pytest.raises(ValueError, match="invalid duration"):
            parse_duration(bad)


@pytest.fixture
def berlin() -> Iterator[None]:
    old = os.environ.get("TZ")
    os.environ["TZ"] = "Europe/Berlin"
    time.tzset()
    yield
    if old is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = old
    time.tzset()


def test_within_counts_calendar_days_across_dst_in_the_local_zone(berlin: None) -> None:
    zone = zoneinfo.ZoneInfo("Europe/Berlin")
    latest = dt.datetime(2026, 3, 30, 12, tzinfo=zone)  # the day after the spring change
    s = snap(int(latest.timestamp()) * NS, offset=2 * 3600)
    cut = within_cutoff(s, Duration(days=2))
    assert cut == int(dt.datetime(2026, 3, 28, 12, tzinfo=zone).timestamp()) * NS  # 47 h earlier
    # Written with an offset that is not the local one: a fixed offset, 48 h.
    other = snap(s.time, offset=3 * 3600)
    assert within_cutoff(other, Duration(days=2)) == s.time - 2 * DAY
    # Month arithmetic normalises like Go: 31 March minus a month is 3 March.
    end_of_march = snap(int(dt.datetime(2026, 3, 31, 12, tzinfo=dt.UTC).timestamp()) * NS)
    assert (
        within_cutoff(end_of_march, Duration(months=1))
        == int(dt.datetime(2026, 3, 3, 12, tzinfo=dt.UTC).timestamp()) * NS
    )


def test_snapshot_keeps_its_offset() -> None:
    s = snap(T0, offset=-5 * 3600 - 30 * 60)
    back = Snapshot.from_json(s.to_json())
    assert back.time == T0 and back.time_offset == s.time_offset
    assert jsonfmt.format_time(T0, offset=3600).endswith("+01:00")
    assert jsonfmt.time_offset("2026-01-01T00:00:00Z") == 0
