"""What `backup` reads besides its arguments: --files-from, --exclude-file, and --iexclude.

restic's list format (one entry a line, ``#`` comments and blank lines ignored, ``-`` for stdin),
folded into the paths and the exclude list before anything else happens, so the rest of the
command sees one list of sources and one list of globs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from shadowvault.errors import UsageError


def _lines(path: str, what: str) -> list[str]:
    """Non-empty, non-comment lines of a list file (restic's --exclude-file/--files-from format)."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise UsageError(f"cannot read {what} {path}: {e.strerror}") from None
    return [s for s in (line.strip() for line in text.splitlines()) if s and not s.startswith("#")]


def case_insensitive_glob(pattern: str) -> str:
    """``*.JPG`` → ``*.[jJ][pP][gG]``: the same glob, every letter either case (restic's --iexclude).

    Written as bracket expressions so one exclude list (and the configuration's syntax) serves both;
    existing bracket expressions and escaped characters are kept as they are.
    """
    out: list[str] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            out.append(pattern[i : i + 2])
            i += 2
            continue
        if ch == "[":
            end = pattern.find("]", i + 2)
            if end != -1:
                out.append(pattern[i : end + 1])
                i = end + 1
                continue
        out.append(f"[{ch.lower()}{ch.upper()}]" if ch.lower() != ch.upper() else ch)
        i += 1
    return "".join(out)


def read_list_files(args: argparse.Namespace) -> None:
    """Fold --files-from into the paths and --exclude-file into --exclude (before anything else)."""
    for f in args.files_from:
        args.paths.extend(_lines(f, "--files-from file"))
    for f in args.exclude_file:
        args.exclude.extend(_lines(f, "--exclude-file"))
    args.exclude.extend(case_insensitive_glob(p) for p in args.iexclude)
    if args.files_from and not args.paths:
        raise UsageError(f"--files-from {', '.join(args.files_from)} lists no paths")
