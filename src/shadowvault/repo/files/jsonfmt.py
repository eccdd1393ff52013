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

_EPOCH = dt.datetime(1970, 1, 1)
_MIN = dt.datetime(1, 1, 1)
_MAX = dt.datetime(9999, 12, 31, 23, 59, 59)
_NS = 1_000_000_000

_SURROGATE = re.compile("[\ud800-\udfff]")
_GO_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
_GO_ESCAPE_RE = re.compile("[<>&\u2028\u2029]")

_RFC3339 = re.compile(
    r"^(-?\d{4,})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(?:\.(\d+))?(Z|z|[+-]\d\d:\d\d)$",
)


def dumps(doc: Any) -> bytes:
    """Compact JSON as Go's ``json.Marshal`` writes it (key order as given)."""
    text = json.dumps(doc, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    # Lone surrogates come from undecodable file names (surrogateescape); Go
    # would write U+FFFD for the invalid bytes, so do we.
    text = _SURROGATE.sub("\ufffd", text)
    text = _GO_ESCAPE_RE.sub(lambda m: _GO_ESCAPES[m.group(0)], text)
    return text.encode("utf-8")


def loads(data: bytes | str) -> Any:
    """Parse JSON; ``ValueError`` on malformed input."""
    return json.loads(data)


def _local_offset(seconds: int) -> int:
    try:
        return time.localtime(seconds).tm_gmtoff
    except (OverflowError, OSError, ValueError):
        return 0


def format_time(ns: int, *, utc: bool = False) -> str:
    """RFC 3339 with nanoseconds like Go's ``time.RFC3339Nano``, in local time unless ``utc``."""
    seconds, frac = divmod(ns, _NS)
    offset = 0 if utc else _local_offset(seconds)
    try:
        local = _EPOCH + dt.timedelta(seconds=seconds + offset)
    except OverflowError:
        # Go's FixTime clamps the year into 0..9999 before marshalling.
        local = _MIN if seconds < 0 else _MAX
    text = local.strftime("%Y-%m-%dT%H:%M:%S")
    if local.year < 1000:
        text = f"{local.year:04d}" + text[text.index("-") :]
    if frac:
        text += "." + f"{frac:09d}".rstrip("0")
    if offset == 0:
        return text + "Z"
    sign = "+" if offset > 0 else "-"
    hours, minutes = divmod(abs(offset) // 60, 60)
    return f"{text}{sign}{hours:02d}:{minutes:02d}"


# "YYYY-MM-DDTHH:MM" → seconds since the epoch of that minute, read as UTC. Trees hold three
# timestamps per node and files of one directory mostly share their minutes, so a parent snapshot's
# trees parse with a dictionary hit instead of a regex and a date computation per timestamp.
_MINUTES: dict[str, int] = {}
_MINUTES_MAX = 1 << 16
_HEAD = re.compile(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d)", re.ASCII)


def _minute(head: str) -> int | None:
    """Seconds of a strict ASCII ``YYYY-MM-DDTHH:MM`` (cached); None when it is not one."""
    base = _MINUTES.get(head)
    if base is None:
        m = _HEAD.fullmatch(head)
        if m is None:
            return None
        year, month, day, hour, minute = (int(g) for g in m.groups())
        try:
            days = (dt.date(year, month, day) - _EPOCH.date()).days
        except ValueError:
            return None  # the general parser gives the error message
        base = days * 86400 + hour * 3600 + minute * 60
        if len(_MINUTES) >= _MINUTES_MAX:
            _MINUTES.clear()
        _MINUTES[head] = base
    return base


def _parse_time_fast(text: str) -> int | None:
    """``parse_time`` for the exact shape Go and :func:`format_time` write (ASCII digits, ``T``,
    ``Z`` or ``±HH:MM``); None for anything else, which the general parser then handles."""
    if len(text) < 20 or text[16] != ":" or not text.isascii():
        return None
    base = _minute(text[:16])
    sec = text[17:19]
    if base is None or not sec.isdigit():
        return None
    last = text[-1]
    if last == "Z":
        zone = 0
        end = len(text) - 1
    else:
        end = len(text) - 6
        z = text[end:]
        if end < 19 or z[0] not in "+-" or z[3] != ":" or not (z[1:3] + z[4:]).isdigit():
            return None
        zone = int(z[1:3]) * 3600 + int(z[4:]) * 60
        if z[0] == "+":
            zone = -zone
    if end == 19:
        frac_ns = 0
    else:
        frac = text[20:end]
        if text[19] != "." or not frac.isdigit():
            return None
        frac_ns = int(frac[:9].ljust(9, "0"))
    return (base + int(sec) + zone) * _NS + frac_ns


def parse_time(text: str) -> int:
    """Nanoseconds since the epoch from RFC 3339 with any offset and any number of fraction digits."""
    fast = _parse_time_fast(text) if isinstance(text, str) else None
    if fast is not None:
        return fast
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


def now_ns() -> int:
    """Current wall-clock time in nanoseconds."""
    return time.time_ns()
