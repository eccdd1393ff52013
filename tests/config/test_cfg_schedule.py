"""The schedule grammar and next-run computation."""

from __future__ import annotations

from datetime import datetime

import pytest

from shadowvault.config.schedule import parse_schedule


def nxt(text: str, when: str) -> str:
    return parse_schedule(text).next_after(datetime.fromisoformat(when)).isoformat(" ", "minutes")


@pytest.mark.parametrize(
    ("text", "when", "expected"),
    [
        ("hourly", "2026-03-01 10:00", "2026-03-01 11:00"),
        ("hourly :15", "2026-03-01 10:14:59", "2026-03-01 10:15"),
        ("daily 02:00", "2026-03-01 02:00", "2026-03-02 02:00"),
        ("daily 02:00", "2026-03-01 01:59", "2026-03-01 02:00"),
        ("daily", "2026-12-31 23:59", "2027-01-01 00:00"),
        ("Weekly SUN 03:00", "2026-11-25 12:00", "2026-11-29 03:00"),  # 2026-11-25 is a Wednesday
        ("weekly monday", "2026-11-25 12:00", "2026-11-30 00:00"),
        ("monthly 31 04:30", "2026-04-01 00:00", "2026-05-31 04:30"),  # April has no 31st
        ("*/20 * * * *", "2026-01-01 00:41", "2026-01-01 01:00"),
        ("0 9-17/4 * * mon-fri", "2026-11-27 17:30", "2026-11-30 09:00"),  # Fri evening → Mon
        ("30 4 1,15 * *", "2026-01-02 00:00", "2026-01-15 04:30"),
        ("0 0 * feb *", "2026-03-01 00:00", "2027-02-01 00:00"),
        ("0 12 * * 7", "2026-11-25 00:00", "2026-11-29 12:00"),  # 7 is Sunday too
        ("0 0 13 * fri", "2026-11-25 00:00", "2026-11-27 00:00"),  # dom OR dow when both restricted
        ("0 0 29 2 *", "2026-03-01 00:00", "2028-02-29 00:00"),
    ],
)
def test_next_after(text: str, when: str, expected: str) -> None:
    assert nxt(text, when) == expected


def test_shorthands_become_cron_and_match() -> None:
    assert parse_schedule("hourly :07").cron == "7 * * * *"
    assert parse_schedule("Weekly SUN 03:00").cron == "0 3 * * 0"
    assert parse_schedule("monthly 1 04:30").cron == "30 4 1 * *"
    s = parse_schedule("5 1 * * *")
    assert s.matches(datetime(2026, 5, 5, 1, 5, 59)) and not s.matches(datetime(2026, 5, 5, 1, 6))


@pytest.mark.parametrize(
    ("text", "detail"),
    [
        ("", "empty"),
        ("dayly 02:00", "unknown form"),
        ("daily 2pm", "not a time of day"),
        ("daily 24:00", "not a time of day"),
        ("hourly 15", "not a minute"),
        ("weekly", "needs a day"),
        ("weekly funday", "not a day of the week"),
        ("monthly 32", "outside 1-31"),
        ("daily 02:00 extra", "too many words"),
        ("60 * * * *", "Bad minute"),
        ("* 24 * * *", "Bad hour"),
        ("* * 0 * *", "Bad day-of-month"),
        ("* * * 13 *", "Bad month"),
        ("* * * * 8", "Bad day-of-week"),
        ("*/0 * * * *", "Bad minute"),
        ("5-1 * * * *", "Bad minute"),
        ("a * * * *", "Bad minute"),
        ("* * * *", "unknown form"),
    ],
)
def test_invalid(text: str, detail: str) -> None:
    with pytest.raises(ValueError, match=detail):
        parse_schedule(text)


def test_never_firing_schedule_is_refused_when_parsed() -> None:
    with pytest.raises(ValueError, match="day-of-month"):
        parse_schedule("0 0 31 2 *")
