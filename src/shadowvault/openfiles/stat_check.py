"""Pure before/after ``fstat`` comparison: did the file change while we read it?

The before stat and the after stat are both taken on our own file descriptor; the
identity check (device, inode) uses a stat of the *path* after the read, because the
descriptor's inode can never change but the path can be renamed over or removed.
"""

from __future__ import annotations

from typing import Protocol


class StatLike(Protocol):
    """The ``os.stat_result`` fields the check needs (so tests can build values directly)."""

    @property
    def st_size(self) -> int: ...
    @property
    def st_mtime_ns(self) -> int: ...
    @property
    def st_ctime_ns(self) -> int: ...
    @property
    def st_ino(self) -> int: ...
    @property
    def st_dev(self) -> int: ...


SIZE = "size"
MTIME = "mtime"
CTIME = "ctime"
INODE = "inode"
REMOVED = "removed"


def changed_fields(before: StatLike, after: StatLike, path_after: StatLike | None) -> tuple[str, ...]:
    """Names of what changed between ``before`` and ``after`` (empty tuple: unchanged).

    ``path_after`` is the stat of the path after the read, ``None`` if the path no longer
    exists (reported as ``removed``); a different (device, inode) is reported as ``inode``.
    """
    out: list[str] = []
    if before.st_size != after.st_size:
        out.append(SIZE)
    if before.st_mtime_ns != after.st_mtime_ns:
        out.append(MTIME)
    if before.st_ctime_ns != after.st_ctime_ns:
        out.append(CTIME)
    if path_after is None:
        out.append(REMOVED)
    elif (path_after.st_dev, path_after.st_ino) != (before.st_dev, before.st_ino):
        out.append(INODE)
    return tuple(out)
