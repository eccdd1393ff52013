"""Read-ahead: ask the kernel to start reading a directory's small files before we get to them.

The session reads files one at a time in the main thread (leases signal it), so on a cold cache
it waits for the disk once per small file. A helper thread walks ahead through the directory
listing and calls ``posix_fadvise(WILLNEED)`` on regular files that will actually be read, so the
data is in the page cache when the main thread opens them. Only regular files are touched
(opening a FIFO or a device could have side effects), only small ones (the kernel's own
sequential read-ahead covers large files), and never files the parent snapshot lets us skip.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

MAX_SIZE = 1024 * 1024

Unchanged = Callable[[bytes, os.stat_result], bool]


class ReadAhead:
    """One background thread that pre-reads the small files of each directory as it is listed."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="readahead")
        self._stopped = False

    def directory(self, base: bytes, names: Sequence[bytes], unchanged: Unchanged) -> None:
        """Queue the entries ``names`` of directory ``base``; ``unchanged`` says which need no read."""
        if not self._stopped:
            self._pool.submit(self._run, base, list(names), unchanged)

    def close(self) -> None:
        """Stop (pending directories are dropped)."""
        self._stopped = True
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _run(self, base: bytes, names: list[bytes], unchanged: Unchanged) -> None:
        flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC | getattr(os, "O_NOATIME", 0)
        for name in names:
            if self._stopped:
                return
            path = base + b"/" + name
            try:
                st = os.lstat(path)
                if not stat.S_ISREG(st.st_mode) or not 0 < st.st_size <= MAX_SIZE or unchanged(name, st):
                    continue
                try:
                    fd = os.open(path, flags)
                except PermissionError:  # O_NOATIME needs the owner; fall back without it
                    fd = os.open(path, flags & ~getattr(os, "O_NOATIME", 0))
                try:
                    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_WILLNEED)
                finally:
                    os.close(fd)
            except OSError:
                continue  # purely advisory: whatever fails here is met again by the real read
