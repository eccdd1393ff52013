"""Find the line on which a TOML key is written, for error messages.

``tomllib`` returns plain dicts without positions, so this module scans the text once and
records, for every table header and every ``key = value`` line, the full dotted key path it
defines (header path + dotted key). It understands bare, "basic" and 'literal' keys, dotted
keys (``retention.keep_daily = 7`` or ``web.retry_times = 3`` under ``[sets]``), inline tables
(the line of ``web = { retry_times = 12 }`` answers for ``sets.web.retry_times``) and skips the
inside of multi-line strings and arrays. It is a locator, not a parser: the text has already
been parsed by ``tomllib`` when it is used.
"""

from __future__ import annotations

import json
import re

__all__ = ["KeyLocator"]

_BARE = r"[A-Za-z0-9_-]+"
_BASIC = r'"(?:[^"\\]|\\.)*"'
_LITERAL = r"'[^']*'"
_KEY_PART = rf"(?:{_BARE}|{_BASIC}|{_LITERAL})"
_KEY = rf"{_KEY_PART}(?:\s*\.\s*{_KEY_PART})*"
_HEADER_RE = re.compile(rf"^\s*\[\[?\s*({_KEY})\s*\]\]?")
_ASSIGN_RE = re.compile(rf"^\s*({_KEY})\s*=")
_PART_RE = re.compile(_KEY_PART)


def _split_key(text: str) -> tuple[str, ...]:
    parts: list[str] = []
    for m in _PART_RE.finditer(text):
        raw = m.group(0)
        if raw.startswith('"'):
            try:
                parts.append(json.loads(raw))  # TOML basic-string escapes are JSON's, near enough
            except ValueError:
                parts.append(raw[1:-1])
        elif raw.startswith("'"):
            parts.append(raw[1:-1])
        else:
            parts.append(raw)
    return tuple(parts)


def _strip_strings(line: str) -> str:
    """The line with single-line string contents removed, to count brackets and quotes safely."""
    # Strings first, so that a "#" left over can only start a comment.
    return re.sub(rf"{_BASIC}|{_LITERAL}", '""', line).split("#", 1)[0]


class KeyLocator:
    """Index of the lines that define each key path of one TOML text (lines count from 1)."""

    def __init__(self, text: str) -> None:
        self._entries: list[tuple[int, tuple[str, ...]]] = []
        table: tuple[str, ...] = ()
        in_multiline: str | None = None  # the closing delimiter we are waiting for
        bracket_depth = 0  # open "[" / "{" of a multi-line value
        for lineno, line in enumerate(text.splitlines(), start=1):
            if in_multiline is not None:
                if line.count(in_multiline) % 2 == 1:
                    in_multiline = None
                continue
            if bracket_depth > 0:
                stripped = _strip_strings(line)
                bracket_depth += stripped.count("[") + stripped.count("{")
                bracket_depth -= stripped.count("]") + stripped.count("}")
                continue
            header = _HEADER_RE.match(line)
            if header:
                table = _split_key(header.group(1))
                self._entries.append((lineno, table))
                continue
            assign = _ASSIGN_RE.match(line)
            if not assign:
                continue
            self._entries.append((lineno, table + _split_key(assign.group(1))))
            value = line[assign.end() :]
            for delim in ('"""', "'''"):
                if value.count(delim) % 2 == 1:
                    in_multiline = delim
                    break
            else:
                stripped = _strip_strings(value)
                depth = stripped.count("[") + stripped.count("{") - stripped.count("]") - stripped.count("}")
                bracket_depth = max(depth, 0)

    def line_of(self, *path: str) -> int | None:
        """Line defining ``path`` (or something inside it); else the table holding it.

        ``line_of("sets", "web", "retry_times")`` finds ``retry_times = …`` under ``[sets.web]``,
        ``web.retry_times = …`` under ``[sets]``, or ``web = { retry_times = … }``.
        Failing those, the closest enclosing table header; ``None`` when nothing encloses it.
        """
        enclosing: tuple[int, int] | None = None  # (depth, line) of the closest enclosing entry
        for lineno, full in self._entries:
            if full[: len(path)] == path:
                return lineno
            encloses = full and len(full) < len(path) and path[: len(full)] == full
            if encloses and (enclosing is None or len(full) > enclosing[0]):
                enclosing = (len(full), lineno)
        return enclosing[1] if enclosing else None
