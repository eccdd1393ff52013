"""Exclude patterns: shell globs over path components, with ``**``, compiled once.

Semantics follow restic's ``--exclude`` so that users can carry their patterns over:

* A pattern is split at ``/`` into components; each component is a glob over one path
  component: ``*`` (any run of characters except ``/``), ``?`` (one character except ``/``),
  ``[abc]`` / ``[a-z]`` / ``[!a-z]`` (``^`` also negates), ``\\x`` (a literal ``x``).
* A component that is exactly ``**`` matches any number of whole path components, zero included:
  ``a/**/b`` matches ``a/b``, ``a/x/b`` and ``a/x/y/b``.
* A pattern starting with ``/`` is anchored at the root of the absolute path: ``/var/cache``
  matches ``/var/cache`` and nothing named ``cache`` elsewhere.
* Any other pattern may match any contiguous run of components: ``*.log`` matches every
  ``.log`` file anywhere, ``foo/bar`` matches ``/x/foo/bar``.
* A match on a directory also covers everything beneath it: ``/var/cache`` matches
  ``/var/cache/apt/pkgcache.bin``, so a walker that skips excluded directories and a caller that
  asks about a deep path get the same answer.
* A trailing ``/`` restricts the pattern to directories: ``build/`` excludes a directory named
  ``build`` (and its contents) but not a regular file of that name. This is the only use of
  ``is_dir`` in :meth:`ExcludeMatcher.matches`.

Relative paths are matched as if they started at the root. Matching is on bytes; patterns are
``str`` and are encoded with the file-system encoding (``os.fsencode``), so non-UTF-8 names can be
written with surrogate escapes. ``?`` matches one UTF-8 character; bracket classes compare single
bytes, so put only ASCII characters in them.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

__all__ = ["ExcludeMatcher", "compile_pattern"]

_ANY_COMPONENTS = rb"(?:/[^/]+)*"
_ONE_CHAR = "(?:[^/\\x80-\\xbf][\\x80-\\xbf]*|[\\x80-\\xbf])"


@dataclass(frozen=True)
class _Compiled:
    pattern: str
    file_re: re.Pattern[bytes]  # used for non-directories
    dir_re: re.Pattern[bytes]  # used for directories


def _class_to_regex(body: str) -> str:
    """Translate the inside of a ``[...]`` bracket expression to a regex class body."""
    out: list[str] = []
    negate = body[:1] in ("!", "^")
    if negate:
        body = body[1:]
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            out.append(re.escape(body[i + 1]))
            i += 2
            continue
        # A dash between two characters is a range; anywhere else it is literal.
        if ch == "-" and out and i + 1 < len(body):
            out.append("-")
        else:
            out.append(re.escape(ch))
        i += 1
    # The slash never belongs to a path component, so negated classes must not match it either.
    return ("^/" if negate else "") + "".join(out)


def _component_to_regex(component: str, pattern: str) -> str:
    """Translate one glob component (never ``**``) to a regex over one path component."""
    out: list[str] = []
    i = 0
    n = len(component)
    while i < n:
        ch = component[i]
        if ch == "*":
            # Collapse runs: "a**b" inside a component behaves like "a*b".
            while i + 1 < n and component[i + 1] == "*":
                i += 1
            out.append("[^/]*")
        elif ch == "?":
            # One UTF-8 character: a lead byte and its continuation bytes (or a stray byte).
            out.append(_ONE_CHAR)
        elif ch == "\\":
            if i + 1 >= n:
                raise ValueError(f"exclude pattern {pattern!r}: trailing backslash escapes nothing")
            out.append(re.escape(component[i + 1]))
            i += 1
        elif ch == "[":
            j = i + 1
            if j < n and component[j] in "!^":
                j += 1
            if j < n and component[j] == "]":  # a leading "]" is a literal member
                j += 1
            while j < n and component[j] != "]":
                if component[j] == "\\":
                    j += 1
                j += 1
            if j >= n:
                raise ValueError(f"exclude pattern {pattern!r}: unclosed '['")
            body = component[i + 1 : j]
            if body in ("", "!", "^"):
                raise ValueError(f"exclude pattern {pattern!r}: empty character class")
            out.append("[" + _class_to_regex(body) + "]")
            i = j
        else:
            out.append(re.escape(ch))
        i += 1
    return "".join(out)


def compile_pattern(pattern: str, *, case_insensitive: bool = False) -> _Compiled:
    """Compile one exclude pattern; ``ValueError`` with the pattern named when it is malformed."""
    if not pattern or not pattern.strip("/"):
        raise ValueError(f"exclude pattern {pattern!r} is empty")
    anchored = pattern.startswith("/")
    dir_only = pattern.endswith("/")
    components = [c for c in pattern.split("/") if c]
    parts: list[bytes] = []
    for comp in components:
        if comp == "**":
            # Consecutive "**" add nothing; keeping one avoids catastrophic backtracking.
            if not parts or parts[-1] != _ANY_COMPONENTS:
                parts.append(_ANY_COMPONENTS)
        else:
            parts.append(b"/" + os.fsencode(_component_to_regex(comp, pattern)))
    body = b"".join(parts)
    start = rb"\A" if anchored else b""
    flags = re.IGNORECASE if case_insensitive else 0
    # Ending at a slash means "this directory, so everything below it" as well.
    any_end = rb"(?=/|\Z)"
    below_only = rb"(?=/)"
    file_re = re.compile(start + body + (below_only if dir_only else any_end), flags)
    dir_re = re.compile(start + body + any_end, flags)
    return _Compiled(pattern, file_re, dir_re)


def _normalise(path: bytes) -> bytes:
    """Make ``path`` start with one slash and end without one, so components are ``/name``."""
    if not path.startswith(b"/"):
        path = b"/" + path
    if b"//" in path or b"/." in path or path.endswith(b"/"):
        path = os.path.normpath(path)
        if path.startswith(b"//"):  # POSIX keeps a leading double slash; we do not need it
            path = b"/" + path.lstrip(b"/")
    return path


_Combined = tuple[re.Pattern[bytes] | None, re.Pattern[bytes] | None, re.Pattern[bytes] | None]


def _combine(regexes: list[bytes], flags: int) -> _Combined:
    """Patterns' regexes joined into (anchored, starting at a slash, other) alternations.

    One alternation scans each path once however many patterns there are. Split this way the
    regex engine can use what the alternatives share: the anchored ones are tried at the start
    of the path only (``match``), and the rest, which start with a literal ``/``, only where the
    path has a slash, instead of every alternative at every position.
    """
    anchored = [r[2:] for r in regexes if r.startswith(rb"\A")]
    at_slash = [r[1:] for r in regexes if r.startswith(b"/")]
    other = [r for r in regexes if not r.startswith((rb"\A", b"/"))]

    def join(prefix: bytes, parts: list[bytes]) -> re.Pattern[bytes] | None:
        if not parts:
            return None
        return re.compile(prefix + b"(?:" + b"|".join(b"(?:" + p + b")" for p in parts) + b")", flags)

    return join(b"", anchored), join(b"/", at_slash), join(b"", other)


class ExcludeMatcher:
    """A list of exclude patterns compiled once into two regular expressions.

    ``ExcludeMatcher(["*.log", "/var/cache", "**/node_modules/"])``; ``ValueError`` names the
    first malformed pattern. Empty strings in ``patterns`` are ignored.
    """

    def __init__(self, patterns: list[str], *, case_insensitive: bool = False) -> None:
        self._compiled = [compile_pattern(p, case_insensitive=case_insensitive) for p in patterns if p]
        flags = re.IGNORECASE if case_insensitive else 0
        self._file_res = _combine([c.file_re.pattern for c in self._compiled], flags)
        self._dir_res = _combine([c.dir_re.pattern for c in self._compiled], flags)

    @property
    def patterns(self) -> list[str]:
        """The patterns in effect, in the order given."""
        return [c.pattern for c in self._compiled]

    def __bool__(self) -> bool:
        return bool(self._compiled)

    def __repr__(self) -> str:
        return f"ExcludeMatcher({self.patterns!r})"

    def matches(self, path: bytes, is_dir: bool) -> bool:
        """True when ``path`` (or a directory above it) is excluded by some pattern."""
        anchored, at_slash, other = self._dir_res if is_dir else self._file_res
        if anchored is at_slash is other is None:
            return False
        norm = path
        if not path.startswith(b"/") or b"//" in path or b"/." in path or path.endswith(b"/"):
            norm = _normalise(path)  # the walk's paths rarely need it: skip the call
        return (
            (anchored is not None and anchored.match(norm) is not None)
            or (at_slash is not None and at_slash.search(norm) is not None)
            or (other is not None and other.search(norm) is not None)
        )

    def first_match(self, path: bytes, is_dir: bool) -> str | None:
        """The first pattern that excludes ``path``, or ``None`` (for "why was this skipped")."""
        norm = _normalise(path)
        for c in self._compiled:
            if (c.dir_re if is_dir else c.file_re).search(norm):
                return c.pattern
        return None
