"""Which processes have which files open for writing: a /proc scan into an index by (device, inode).

Sources (proc(5)): ``/proc/PID/fdinfo/FD`` gives the open flags in octal (``flags:``),
so ``O_WRONLY``/``O_RDWR`` descriptors are writers; ``stat`` of ``/proc/PID/fd/FD``
follows the magic link to the open file's device and inode; ``/proc/PID/maps`` lists
shared writable mappings (``rw-s``/``-w-s``) with ``major:minor`` (hex) and inode, which
keep a file writable after its descriptor is closed. Processes of other users are
invisible without root: the index then names only what it can see.

The parsers are pure; :class:`WriterIndex` is the thin scanning part.

Companion files: SQLite in rollback mode creates ``NAME-journal`` at the start of every write
transaction and deletes it at the commit, a millisecond later; the next transaction gets a new
inode. A /proc scan takes far longer than that (0.2 s with a few hundred processes), so the
journal's inode is practically never in the index and its writer stayed "could not be
identified", even as root. The process that writes a journal is one that has the database
itself open for writing, and that file's inode is stable: :func:`main_file_of` names it so the
reader can look its writers up instead.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Iterator

from .model import WriterInfo

Key = tuple[int, int]  # (st_dev, st_ino)

_ACCMODE = os.O_ACCMODE if hasattr(os, "O_ACCMODE") else 3


#: Names SQLite gives the files that belong to database NAME (rollback journal, WAL, WAL index).
COMPANION_SUFFIXES: tuple[bytes, ...] = (b"-journal", b"-wal", b"-shm")


def main_file_of(path: bytes) -> bytes | None:
    """The database file ``path`` would be a companion of, by its name (``a.db-wal`` → ``a.db``)."""
    for suffix in COMPANION_SUFFIXES:
        if path.endswith(suffix) and len(path) > len(suffix) and not path.endswith(b"/" + suffix):
            return path[: -len(suffix)]
    return None


def parse_fdinfo_flags(text: str) -> int | None:
    """The ``flags:`` value (octal) of an fdinfo file, or None if absent."""
    for line in text.splitlines():
        if line.startswith("flags:"):
            try:
                return int(line.split(":", 1)[1].strip(), 8)
            except ValueError:
                return None
    return None


def is_write_mode(flags: int) -> bool:
    """Whether open flags grant write access."""
    return (flags & _ACCMODE) in (os.O_WRONLY, os.O_RDWR)


def parse_maps_line(line: str) -> Key | None:
    """(device, inode) of a shared writable file mapping line of ``/proc/PID/maps``, else None."""
    parts = line.split(None, 5)
    if len(parts) < 5:
        return None
    perms, dev, inode = parts[1], parts[3], parts[4]
    if len(perms) < 4 or perms[1] != "w" or perms[3] != "s":
        return None
    try:
        ino = int(inode)
        major_s, minor_s = dev.split(":")
        major, minor = int(major_s, 16), int(minor_s, 16)
    except ValueError:
        return None
    if ino == 0:
        return None  # anonymous shared memory
    return os.makedev(major, minor), ino


def _read_text(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return None


def _pids(proc: str) -> Iterator[int]:
    try:
        names = os.listdir(proc)
    except OSError:
        return
    for name in names:
        if name.isdigit():
            yield int(name)


def scan_process(proc: str, pid: int) -> set[Key]:
    """Keys of regular files ``pid`` has open for writing or mapped shared-writable."""
    keys: set[Key] = set()
    base = f"{proc}/{pid}"
    try:
        fds = os.listdir(f"{base}/fd")
    except OSError:
        fds = []  # gone, or another user's process without privileges
    for fd in fds:
        info = _read_text(f"{base}/fdinfo/{fd}")
        flags = parse_fdinfo_flags(info) if info is not None else None
        if flags is None or not is_write_mode(flags):
            continue
        try:
            st = os.stat(f"{base}/fd/{fd}")
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode):
            keys.add((st.st_dev, st.st_ino))
    maps = _read_text(f"{base}/maps")
    if maps:
        for line in maps.splitlines():
            key = parse_maps_line(line)
            if key is not None:
                keys.add(key)
    return keys


def command_of(proc: str, pid: int) -> str:
    """The process's command name from ``/proc/PID/comm`` (``?`` if it is gone)."""
    text = _read_text(f"{proc}/{pid}/comm")
    return text.strip() if text else "?"


def scan(proc: str = "/proc", exclude_pid: int | None = None) -> dict[Key, tuple[WriterInfo, ...]]:
    """Build the whole index; our own process is left out (``exclude_pid``, default ours)."""
    me = os.getpid() if exclude_pid is None else exclude_pid
    index: dict[Key, list[WriterInfo]] = {}
    for pid in _pids(proc):
        if pid == me:
            continue
        keys = scan_process(proc, pid)
        if not keys:
            continue
        who = WriterInfo(pid, command_of(proc, pid))
        for key in keys:
            index.setdefault(key, []).append(who)
    return {k: tuple(sorted(v, key=lambda w: w.pid)) for k, v in index.items()}


class WriterIndex:
    """Session-wide writer index, built lazily on first use and refreshed on demand.

    ``min_refresh_interval`` keeps a burst of refused leases from rescanning /proc for
    every file: a rescan is skipped when the index is younger than that. ``max_age``
    bounds how stale a plain lookup may be (sessions without leases never see a refusal
    that would trigger a refresh).
    """

    def __init__(self, proc: str = "/proc", min_refresh_interval: float = 0.5, max_age: float = 60.0) -> None:
        self.proc = proc
        self.min_refresh_interval = min_refresh_interval
        self.max_age = max_age
        self._index: dict[Key, tuple[WriterInfo, ...]] | None = None
        self._built_at = 0.0
        self.scans = 0

    def refresh(self) -> None:
        """Rescan /proc now."""
        self._index = scan(self.proc)
        self._built_at = time.monotonic()
        self.scans += 1

    def _older_than(self, seconds: float) -> bool:
        return self._index is None or time.monotonic() - self._built_at >= seconds

    def lookup(self, dev: int, ino: int) -> tuple[WriterInfo, ...]:
        """Writers of the file from the index (built now if it never was or is older than ``max_age``)."""
        if self._older_than(self.max_age):
            self.refresh()
        assert self._index is not None
        return self._index.get((dev, ino), ())

    def lookup_fresh(self, dev: int, ino: int) -> tuple[WriterInfo, ...]:
        """Writers of a file we know has one (its lease was refused): rescan unless the index is recent."""
        if self._older_than(self.min_refresh_interval):
            self.refresh()
        return self.lookup(dev, ino)
