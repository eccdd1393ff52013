"""JSON and timestamp encoding shared by the repository's JSON documents.

restic is written in Go, so its documents follow Go's conventions: compact
``encoding/json`` output (``<``, ``>``, ``&``, U+2028 and U+2029 escaped, invalid
UTF-8 replaced by U+FFFD) and ``time.Time`` as RFC 3339 with nanoseconds,
trailing zeros of the fraction dropped and the local UTC offset (``Z`` for UTC).
We keep timestamps as integer nanoseconds since the Unix epoch.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from typing import Any

import orjson

_EPOCH = dt.datetime(1970, 1, 1)
_MIN = dt.datetime(1, 1, 1)
_MAX = dt.datetime(9999, 12, 31, 23, 59, 59)
_NS = 1_000_000_000

_SURROGATE = re.compile("[\ud800-\udfff]")
_GO_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
_GO_ESCAPE_RE = re.compile("[<>&\u2028\u2029]")
_GO_ESCAPES_BYTES = {k.encode(): v.encode() for k, v in _GO_ESCAPES.items()}
_GO_ESCAPE_BYTES_RE = re.compile(b"[<>&]|\xe2\x80[\xa8\xa9]")
# One encoder for every document (json.dumps with options builds a new one per call).
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)

_RFC3339 = re.compile(
    r"^(-?\d{4,})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(?:\.(\d+))?(Z|z|[+-]\d\d:\d\d)$",
)


def dumps(doc: Any) -> bytes:
    """Compact JSON as Go's ``json.Marshal`` writes it (key order as given)."""
    # orjson writes every string exactly as the standard library's encoder configured above
    # (checked for every code point in the tests), at a fraction of its cost: a first backup
    # encodes one tree node per file on the walking thread (issue 10). What orjson refuses (an
    # integer beyond 64 bits, a lone surrogate from an undecodable name, a non-string key) is
    # written by the standard library. Floats are spelled differently by the two (1e-05 against
    # 0.00001; restic reads both, and none of restic's documents holds one), and a NaN, which
    # nothing here computes, would be written as null instead of refused.
    try:
        out = orjson.dumps(doc)
    except TypeError:
        return _dumps_stdlib(doc)
    if b"<" in out or b">" in out or b"&" in out or (not out.isascii() and _GO_ESCAPE_BYTES_RE.search(out)):
        out = _GO_ESCAPE_BYTES_RE.sub(lambda m: _GO_ESCAPES_BYTES[m.group(0)], out)
    return out


def _dumps_stdlib(doc: Any) -> bytes:
    text = _ENCODER.encode(doc)
    if text.isascii():
        if "<" in text or ">" in text or "&" in text:
            text = _GO_ESCAPE_RE.sub(lambda m: _GO_ESCAPES[m.group(0)], text)
        return text.encode("ascii")
    # Lone surrogates come from undecodable file names (surrogateescape); Go
    # would write U+FFFD for the invalid bytes, so do we.
    text = _SURROGATE.sub("\ufffd", text)
    text = _GO_ESCAPE_RE.sub(lambda m: _GO_ESCAPES[m.group(0)], text)
    return text.encode("utf-8")


def loads(data: bytes | str) -> Any:
    """Parse JSON; ``ValueError`` on malformed input.

    orjson first: an incremental backup decodes every tree of its parent snapshot and every index
    file, and orjson parses a tree node in a fifth of the standard library's time (1.3 against
    6.2 µs, 200,000 small files). What it refuses (a byte order mark, an unpaired surrogate escape,
    NaN) goes to the standard parser, so the documents read are exactly those read before. One
    difference is accepted: an integer beyond 64 bits becomes a float, where neither restic nor we
    ever write one.
    """
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)


def _local_offset(seconds: int) -> int:
    try:
        return time.localtime(seconds).tm_gmtoff
    except (OverflowError, OSError, ValueError):
        return 0


# (seconds, offset or None for local time, utc) → (text up to the seconds, zone). Trees hold three
# timestamps per node and the files of one directory mostly share their seconds: a tree of small
# files spent half its encoding time in localtime, timedelta and strftime. The cache is dropped
# whenever the local zone may have changed: time.localtime (localtime_r) reads TZ again only in
# time.tzset(), which always replaces the time.tzname tuple.
_FORMATTED: dict[tuple[int, int | None, bool], tuple[str, str]] = {}
_FORMATTED_MAX = 1 << 16
_formatted_zone: object = None


def format_time(ns: int, *, utc: bool = False, offset: int | None = None) -> str:
    """RFC 3339 with nanoseconds like Go's ``time.RFC3339Nano``, in local time unless ``utc``.

    ``offset`` (seconds east of UTC) writes the time in that fixed offset instead.
    """
    global _formatted_zone
    seconds, frac = divmod(ns, _NS)
    if time.tzname is not _formatted_zone or len(_FORMATTED) >= _FORMATTED_MAX:
        _FORMATTED.clear()
        _formatted_zone = time.tzname
    key = (seconds, offset, utc)
    parts = _FORMATTED.get(key)
    if parts is None:
        parts = _FORMATTED[key] = _format_seconds(seconds, utc, offset)
    head, zone = parts
    if frac:
        return f"{head}.{frac:09d}".rstrip("0") + zone
    return head + zone


def _format_seconds(seconds: int, utc: bool, offset: int | None) -> tuple[str, str]:
    """``format_time`` without the fraction: the text up to the seconds and the zone suffix."""
    if offset is None:
        offset = 0 if utc else _local_offset(seconds)
    try:
        local = _EPOCH + dt.timedelta(seconds=seconds + offset)
    except OverflowError:
        # Go's FixTime clamps the year into 0..9999 before marshalling.
        local = _MIN if seconds < 0 else _MAX
    text = local.strftime("%Y-%m-%dT%H:%M:%S")
    if local.year < 1000:
        text = f"{local.year:04d}" + text[text.index("-") :]
    if offset == 0:
        return text, "Z"
    sign = "+" if offset > 0 else "-"
    hours, minutes = divmod(abs(offset) // 60, 60)
    return text, f"{sign}{hours:02d}:{minutes:02d}"


# "YYYY-MM-DDTHH:MM:SS" → seconds since the epoch, read as UTC. Trees hold three timestamps per
# node and files of one directory mostly share their seconds, so a parent snapshot's trees parse
# with a dictionary hit instead of a regex and a date computation per timestamp.
_SECONDS: dict[str, int] = {}
_SECONDS_MAX = 1 << 16
_HEAD = re.compile(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)", re.ASCII)


def _head_seconds(head: str) -> int | None:
    """Seconds of a strict ASCII ``YYYY-MM-DDTHH:MM:SS`` (cached); None when it is not one."""
    m = _HEAD.fullmatch(head)
    if m is None:
        return None
    year, month, day, hour, minute, sec = (int(g) for g in m.groups())
    try:
        days = (dt.date(year, month, day) - _EPOCH.date()).days
    except ValueError:
        return None  # the general parser gives the error message
    base = days * 86400 + hour * 3600 + minute * 60 + sec
    if len(_SECONDS) >= _SECONDS_MAX:
        _SECONDS.clear()
    _SECONDS[head] = base
    return base


def parse_time(text: str) -> int:
    """Nanoseconds since the epoch from RFC 3339 with any offset and any number of fraction digits."""
    # Fast path: the exact shape Go and format_time write (ASCII digits, "T", "Z" or "±HH:MM");
    # anything else, errors included, goes to the general parser.
    if isinstance(text, str):
        head = text[:19]
        base = _SECONDS.get(head)
        if base is None:
            base = _head_seconds(head)
        if base is not None:
            rest = text[19:]
            if rest[-1:] == "Z":
                frac = rest[:-1]
            else:
                zone = rest[-6:]
                frac = rest[:-6]
                hh, mm = zone[1:3], zone[4:]
                if (
                    len(zone) == 6
                    and zone[0] in "+-"
                    and zone[3] == ":"
                    and hh.isascii()
                    and hh.isdigit()
                    and mm.isascii()
                    and mm.isdigit()
                ):
                    offset = int(hh) * 3600 + int(mm) * 60
                    base += -offset if zone[0] == "+" else offset
                else:
                    frac = "invalid"
            if not frac:
                return base * _NS
            digits = frac[1:]
            if frac[0] == "." and digits.isascii() and digits.isdigit():
                return base * _NS + int(digits[:9].ljust(9, "0"))
    return _parse_time_general(text)


def _parse_time_general(text: str) -> int:
    """RFC 3339 through the regex: any separator case, zone spelling and year width."""
    m = _RFC3339.match(text)
    if m is None:
        raise ValueError(f"not an RFC 3339 timestamp: {text!r}")
    year, month, day, hour, minute, sec, frac, zone = m.groups()
    days = (dt.date(int(year), int(month), int(day)) - _EPOCH.date()).days
    seconds = days * 86400 + int(hour) * 3600 + int(minute) * 60 + int(sec)
    if zone not in ("Z", "z"):
        sign = 1 if zone[0] == "+" else -1
        seconds -= sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    frac_ns = int((frac or "0")[:9].ljust(9, "0"))
    return seconds * _NS + frac_ns


def time_offset(text: str) -> int | None:
    """UTC offset in seconds a timestamp was written with (``Z``: 0); None when it has none.

    restic counts hours, days and weeks in the offset a snapshot's time was written with, so
    retention needs it besides the instant ``parse_time`` returns.
    """
    if text[-1:] in ("Z", "z"):
        return 0
    zone = text[-6:]
    if len(zone) == 6 and zone[0] in "+-" and zone[3] == ":" and zone[1:3].isdigit() and zone[4:].isdigit():
        sign = 1 if zone[0] == "+" else -1
        return sign * (int(zone[1:3]) * 3600 + int(zone[4:]) * 60)
    return None


def now_ns() -> int:
    """Current wall-clock time in nanoseconds."""
    return time.time_ns()
