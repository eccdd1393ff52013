"""Next-run computation: schedule ∩ window, jitter, stop_at, DST in two zones (a controlled clock)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from cronsim import CronSim

from shadowvault.config import BackupSet, parse_config
from shadowvault.config.schedule import parse_schedule
from shadowvault.engine.timing import Timing, jitter_offset, timing_of

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def timing(**values: object) -> Timing:
    return timing_of(BackupSet(name="web").with_overrides(**values), UTC)


@pytest.mark.parametrize(
    "expr",
    [
        "*/15 * * * *",
        "0 2 * * *",
        "30 4 1,15 * *",
        "0 9-17/4 * * mon-fri",
        "0 0 13 * fri",
        "5/20 3 * jan,jul *",
        "0 12 * * 7",
        "0 0 29 2 *",
        "59 23 31 * *",
    ],
)
@pytest.mark.parametrize("zone", [UTC, BERLIN, NEW_YORK])
def test_next_firings_equal_cronsim(expr: str, zone: ZoneInfo) -> None:
    """Our schedule is cronsim's expression evaluated in the set's zone, not a parser of our own."""
    sched = parse_schedule(expr)
    start = datetime(2026, 1, 1, tzinfo=zone)
    ours, t = [], start
    for _ in range(25):
        t = sched.next_after(t)
        ours.append(t)
    it = CronSim(expr, start)
    assert ours == [next(it) for _ in range(25)]


def test_window_across_midnight_keeps_only_night_firings() -> None:
    t = timing(schedule="0 * * * *", window="22:00-05:00")
    runs = t.next_runs(datetime(2026, 3, 10, 12, 0, tzinfo=UTC), "h", 8)
    assert [r.fire.hour for r in runs] == [22, 23, 0, 1, 2, 3, 4, 22]
    # Each may start until the window ends on the following morning.
    assert runs[0].start_by == datetime(2026, 3, 11, 5, 0, tzinfo=UTC)
    assert runs[2].start_by == datetime(2026, 3, 11, 5, 0, tzinfo=UTC)
    assert runs[0].may_start(datetime(2026, 3, 11, 4, 59, tzinfo=UTC))
    assert not runs[0].may_start(datetime(2026, 3, 11, 5, 0, tzinfo=UTC))


def test_window_without_midnight_and_no_window() -> None:
    t = timing(schedule="30 * * * *", window="01:00-03:00")
    runs = t.next_runs(datetime(2026, 3, 10, 0, 0, tzinfo=UTC), "h", 3)
    assert [(r.fire.day, r.fire.hour) for r in runs] == [(10, 1), (10, 2), (11, 1)]
    assert runs[0].start_by == datetime(2026, 3, 10, 3, 0, tzinfo=UTC)
    plain = timing(schedule="daily 02:00").next_run(datetime(2026, 3, 10, tzinfo=UTC), "h")
    assert plain is not None and plain.start_by == datetime(2026, 3, 11, 2, 0, tzinfo=UTC)


def test_schedule_that_never_meets_its_window_is_reported() -> None:
    with pytest.raises(ValueError, match="never fires inside its window"):
        timing(schedule="daily 12:00", window="22:00-05:00").next_run(datetime(2026, 1, 1, tzinfo=UTC), "h")


@pytest.mark.parametrize(
    ("zone", "spring", "autumn"),
    [("Europe/Berlin", (2026, 3, 29), (2026, 10, 25)), ("America/New_York", (2026, 3, 8), (2026, 11, 1))],
)
def test_dst_changes_in_two_zones(zone: str, spring: tuple[int, ...], autumn: tuple[int, ...]) -> None:
    tz = ZoneInfo(zone)
    t = timing(schedule="30 2 * * *", timezone=zone)
    # Spring forward: 02:30 does not exist that night; the run happens once, right after the gap.
    before = datetime(*spring, tzinfo=tz) - timedelta(hours=12)
    runs = t.next_runs(before, "h", 2)
    assert runs[0].fire.astimezone(tz).date() == datetime(*spring).date()
    assert runs[0].fire.astimezone(tz).hour == 3
    assert runs[1].fire.astimezone(tz).hour == 2 and runs[1].fire.astimezone(tz).minute == 30
    # Fall back: 02:30 (New York 01:30 repeats; Berlin 02:30 repeats) runs once, not twice.
    repeated = "30 1 * * *" if zone == "America/New_York" else "30 2 * * *"
    t2 = timing(schedule=repeated, timezone=zone)
    before = datetime(*autumn, tzinfo=tz) - timedelta(hours=12)
    runs = t2.next_runs(before, "h", 2)
    gap = runs[1].fire.astimezone(UTC) - runs[0].fire.astimezone(UTC)
    assert runs[0].fire.astimezone(tz).date() == datetime(*autumn).date()
    assert gap == timedelta(hours=25)  # the next day's run, not the repeated hour
    # The schedule is in the set's zone: 02:30 Berlin is 01:30 or 00:30 UTC depending on DST.
    if zone == "Europe/Berlin":
        winter = t.next_run(datetime(2026, 1, 10, tzinfo=UTC), "h")
        summer = t.next_run(datetime(2026, 7, 10, tzinfo=UTC), "h")
        assert winter is not None and summer is not None
        assert winter.fire.astimezone(UTC).hour == 1 and summer.fire.astimezone(UTC).hour == 0


def test_window_end_across_dst_change_is_a_real_instant() -> None:
    # The Berlin night of the spring change is an hour shorter: 22:00-05:00 lasts 6 hours.
    t = timing(schedule="0 22 * * *", window="22:00-05:00", timezone="Europe/Berlin")
    run = t.next_run(datetime(2026, 3, 28, 12, 0, tzinfo=UTC), "h")
    assert run is not None
    assert run.start_by.astimezone(UTC) - run.fire.astimezone(UTC) == timedelta(hours=6)


def test_jitter_is_fixed_per_set_and_host_and_bounded() -> None:
    offsets = [jitter_offset(f"set{i}", f"host{j}", 600) for i in range(20) for j in range(20)]
    assert all(timedelta(0) <= o <= timedelta(seconds=600) for o in offsets)
    # Spread over the whole range: 400 draws from 601 values, each tenth of the range hit.
    assert {int(o.total_seconds()) // 61 for o in offsets} == set(range(10))
    assert jitter_offset("web", "a", 600) == jitter_offset("web", "a", 600)
    assert jitter_offset("web", "a", 0) == timedelta(0)
    t = timing(schedule="0 22 * * *", window="22:00-05:00", jitter=600)
    run = t.next_run(datetime(2026, 3, 10, tzinfo=UTC), "a")
    assert run is not None and run.start - run.fire == jitter_offset("web", "a", 600)


def test_jitter_longer_than_the_window_still_starts_inside() -> None:
    t = timing(schedule="0 22 * * *", window="22:00-22:05", jitter=86400)
    for host in ("a", "b", "c", "d"):
        run = t.next_run(datetime(2026, 3, 10, tzinfo=UTC), host)
        assert run is not None and run.fire <= run.start < run.start_by


def test_deadline_is_the_next_stop_at() -> None:
    t = timing(schedule="0 22 * * *", stop_at="05:30", timezone="Europe/Berlin")
    started = datetime(2026, 3, 10, 22, 0, tzinfo=BERLIN)
    assert t.deadline(started) == datetime(2026, 3, 11, 5, 30, tzinfo=BERLIN)
    early = datetime(2026, 3, 11, 1, 0, tzinfo=BERLIN)
    assert t.deadline(early) == datetime(2026, 3, 11, 5, 30, tzinfo=BERLIN)
    assert timing(schedule="daily").deadline(started) is None


def test_last_run_before_for_catch_up() -> None:
    t = timing(schedule="0 * * * *", window="22:00-05:00")
    now = datetime(2026, 3, 11, 3, 20, tzinfo=UTC)
    last = t.last_run_before(now, "h", since=datetime(2026, 3, 10, 12, 0, tzinfo=UTC))
    assert last is not None and last.fire == datetime(2026, 3, 11, 3, 0, tzinfo=UTC)
    assert t.last_run_before(now, "h", since=now) is None


def test_timing_keys_are_validated_with_the_place() -> None:
    from shadowvault.errors import ConfigError

    for text, hint in [
        ('window = "22:00"', "HH:MM-HH:MM"),
        ('window = "22:00-22:00"', "empty"),
        ('stop_at = "25:00"', "time of day"),
        ('timezone = "Mars/Olympus"', "time zone"),
        ("jitter = -1", "out of range"),
        ('overlap = "drop"', "queue, skip"),
        ('notify = ["hc-ping.com/abc"]', "not an http:// or https:// URL"),
        ("notify_timeout = 0", "out of range"),
    ]:
        with pytest.raises(ConfigError, match=hint) as e:
            parse_config(f"[sets.a]\nsources = ['/x']\n{text}\n").effective("a")
        assert str(e.value).startswith("<config>:3: [sets.a]")
