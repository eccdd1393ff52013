"""Parsing a parent snapshot's trees: the fast paths give what the general parser gives.

``jsonfmt.parse_time`` answers the exact shape Go writes with a cached minute; anything else goes
through the RFC 3339 regex. ``Node.from_dict`` takes plain ASCII names as they are and parses a
timestamp string once when several fields share it.
"""

from __future__ import annotations

import datetime as dt
import random
import re
import time

import pytest

from shadowvault.repo.files import jsonfmt
from shadowvault.repo.files.tree import Node, go_quote

_REFERENCE = re.compile(
    r"^(-?\d{4,})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(?:\.(\d+))?(Z|z|[+-]\d\d:\d\d)$",
)


def reference_parse(text: str) -> int:
    """The general parser as it was before the fast path (regex + date arithmetic)."""
    m = _REFERENCE.match(text)
    if m is None:
        raise ValueError(text)
    year, month, day, hour, minute, sec, frac, zone = m.groups()
    days = (dt.date(int(year), int(month), int(day)) - dt.date(1970, 1, 1)).days
    seconds = days * 86400 + int(hour) * 3600 + int(minute) * 60 + int(sec)
    if zone not in ("Z", "z"):
        sign = 1 if zone[0] == "+" else -1
        seconds -= sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    return seconds * 1_000_000_000 + int((frac or "0")[:9].ljust(9, "0"))


def _outcome(text: str) -> int | str:
    try:
        return reference_parse(text)
    except ValueError:
        return "error"


def _parsed(text: str) -> int | str:
    try:
        return jsonfmt.parse_time(text)
    except ValueError:
        return "error"


ODD = [
    "2026-11-25T08:02:08Z",
    "2026-11-25T08:02:08.5Z",
    "2026-11-25T08:02:08.123456789123Z",  # more than nanoseconds: truncated
    "2026-11-25T08:02:08.000000001+05:30",
    "2026-11-25T08:02:08-00:00",
    "2026-11-25T08:02:08+14:00",
    "2026-11-25t08:02:08Z",
    "2026-11-25 08:02:08Z",
    "2026-11-25T08:02:08z",
    "2026-11-25T08:02:08.Z",
    "2026-11-25T08:02:08",
    "2026-11-25T08:02Z",
    "2026-11-25T08:02:08+0100",
    "2026-11-25T08:02:08+01:0x",
    "2026-11-25T08:02:08x5Z",
    "2026-11-25T99:99:99Z",  # out-of-range clock fields are accepted arithmetically
    "2026-02-30T08:02:08Z",  # impossible date
    "2026-13-01T08:02:08Z",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59.999999999Z",
    "12026-11-25T08:02:08Z",
    "-0001-11-25T08:02:08Z",
    "2026-11-25T08:02:0８Z",  # a full-width digit: a regex \\d, but not ASCII
    "２０２６-11-25T08:02:08Z",
    "2026-11-25T08:02:08.５Z",
    "2026-11-25T08:02:08Z ",
    "",
    "Z",
]


@pytest.mark.parametrize("text", ODD)
def test_parse_time_agrees_with_the_general_parser(text: str) -> None:
    assert _parsed(text) == _outcome(text)
    assert _parsed(text) == _outcome(text)  # second time from the minute cache


@pytest.mark.parametrize(
    "zone", ["UTC0", "CET-1CEST,M3.5.0,M10.5.0/3", "IST-5:30", "NST3:30NDT,M3.2.0,M11.1.0"]
)
def test_parse_time_round_trips_formatted_times(zone: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", zone)
    time.tzset()
    try:
        rng = random.Random(7)
        for _ in range(2000):
            ns = rng.randrange(-(10**18), 4 * 10**18)
            if rng.random() < 0.3:
                ns -= ns % 1_000_000_000  # whole seconds: no fraction written
            for text in (jsonfmt.format_time(ns), jsonfmt.format_time(ns, utc=True)):
                assert jsonfmt.parse_time(text) == ns == reference_parse(text)
    finally:
        monkeypatch.undo()
        time.tzset()


def test_parse_time_rejects_non_strings_as_before() -> None:
    with pytest.raises(TypeError):
        jsonfmt.parse_time(5)  # type: ignore[arg-type]


def _node_dict(**fields: object) -> dict[str, object]:
    d: dict[str, object] = {
        "name": "a",
        "type": "file",
        "mode": 0o644,
        "mtime": "2026-11-25T08:02:08.5Z",
        "atime": "2026-11-25T08:02:08.5Z",
        "ctime": "2026-11-25T08:02:08.5Z",
        "uid": 1,
        "gid": 2,
        "content": [],
    }
    d.update(fields)
    return d


@pytest.mark.parametrize(
    "raw",
    [b"plain.txt", b"with space", b'quo"te', b"back\\slash", b"caf\xc3\xa9", b"bad\xff", b"tab\there"],
)
def test_names_parse_to_the_same_string_either_way(raw: bytes) -> None:
    node = Node.from_dict(_node_dict(name=go_quote(raw)))
    assert node.name == raw.decode("utf-8", "surrogateescape")
    assert Node.from_dict(node.to_dict()) == node


def test_shared_and_distinct_timestamps() -> None:
    node = Node.from_dict(_node_dict(atime="2026-11-25T09:02:08+01:00", ctime="2026-11-25T08:02:09Z"))
    assert node.atime == reference_parse("2026-11-25T08:02:08Z")
    assert node.mtime == reference_parse("2026-11-25T08:02:08.5Z")
    assert node.ctime == reference_parse("2026-11-25T08:02:09Z")
    missing = Node.from_dict(_node_dict(mtime=None, atime=None, ctime="2026-11-25T08:02:09Z"))
    assert (missing.mtime, missing.atime) == (0, 0) and missing.ctime > 0


@pytest.mark.parametrize(
    "bad",
    [
        {"name": 5},
        {"name": None},
        {"mtime": "yesterday"},
        {"atime": 5, "mtime": 5},
        {"ctime": "2026-11-25T08:02:08"},
    ],
)
def test_malformed_nodes_are_still_rejected(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Node.from_dict(_node_dict(**bad))


def test_unknown_keys_still_land_in_extra() -> None:
    node = Node.from_dict(_node_dict(shadowvault={"class": "suspect"}, future_field=1))
    assert node.extra == {"shadowvault": {"class": "suspect"}, "future_field": 1}
    assert Node.from_dict(_node_dict()).extra == {}
