"""Warm the inode and directory caches of the sources while the repository is being opened.

Opening a repository is mostly waiting that does not need the sources: deriving the key,
the lock's settling pause (taken from restic: a lock is re-checked after 200 ms) and reading
the index. On a cold cache the walk that follows then starts by waiting for the disk once per
directory block and inode table block. A background thread that ``lstat``s the sources' tree
during that wait turns those reads into cache hits; it stops as soon as the session starts
walking, so it never competes with the walk itself, and it has a hard cap on entries.

Only metadata is touched (``listdir`` and ``lstat``: no file is opened), nothing below a mount
point is entered, and every error is ignored (the real walk meets it again).
"""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Sequence

MAX_ENTRIES = 200_000


class MetadataPrewarm:
    """A daemon thread walking ``sources`` depth first in the walk's order until ``stop()``."""

    def __init__(self, sources: Sequence[str], *, max_entries: int = MAX_ENTRIES) -> None:
        self._stop = threading.Event()
        self._max = max_entries
        self.entries = 0
        self._thread = threading.Thread(
            target=self._run, args=([os.fsencode(s) for s in sources],), name="prewarm", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop walking (the thread ends at its next entry)."""
        self._stop.set()

    def join(self, timeout: float | None = None) -> None:
        """Wait for the thread to end (tests; the session only calls ``stop``)."""
        self._thread.join(timeout)

    def _run(self, sources: list[bytes]) -> None:
        for source in sources:
            try:
                st = os.lstat(source)
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode) and not self._walk(source, st.st_dev):
                return

    def _walk(self, top: bytes, dev: int) -> bool:
        """Depth first below ``top`` (an explicit stack: trees can be deeper than Python's
        recursion limit); False once stopped or over the cap."""
        stack = [top]
        while stack:
            directory = stack.pop()
            try:
                names = sorted(os.listdir(directory))
            except OSError:
                continue
            subdirs = []
            for name in names:
                if self._stop.is_set() or self.entries >= self._max:
                    return False
                path = directory + b"/" + name
                self.entries += 1
                try:
                    st = os.lstat(path)
                except OSError:
                    continue
                if stat.S_ISDIR(st.st_mode) and st.st_dev == dev:
                    subdirs.append(path)
            stack.extend(reversed(subdirs))  # the first name is walked first, as the session does
        return True
