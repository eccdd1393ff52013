"""Brief shared locks on a live file while the reflink provider clones it, and its companion files.

A per-file clone is a point-in-time copy of one file, but an application that
keeps its state in several files (a database and its rollback journal or
write-ahead log) needs them all from the *same* moment. Lock-respecting
applications announce "I am changing this" with a write lock on the main file:
a SQLite writer in rollback mode holds RESERVED (a write lock on one byte)
from its first journal write until the journal is gone again. So while we
hold a shared whole-file read lock on the main file, such a writer cannot be
between those points: the main file holds a committed state and whatever
companion files exist belong to it.

Two lock families exist and applications use either, so we take both, like
the open-file engine's prevent-write strategy: an OFD read lock
(``F_OFD_SETLK``; it belongs to our open file description, so other
descriptors of the file in this process cannot drop it) and ``flock(LOCK_SH)``.

Waiting: a writer committing in a loop releases its lock for microseconds
between transactions, which polling rarely hits. So after one non-blocking try
a helper thread waits with ``F_OFD_SETLKW``, which the kernel wakes as soon as
the lock is free. A wait that runs past the deadline is abandoned: the thread
drops the lock the moment it gets it. While a wait on one file is still
pending, later requests for that file do not start another thread (an
application that holds its lock for hours must not cost a thread per backup).
An ``flock`` holder is polled instead, every few milliseconds.

*Companion files* are those a lock-respecting application keeps next to its
main file, named by appending a suffix (``NAME-journal``, ``NAME-wal``,
``NAME-shm``): they are cloned under the main file's lock.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import struct
import threading
import time
from pathlib import Path

__all__ = [
    "COMPANION_SUFFIXES",
    "F_OFD_SETLK",
    "F_OFD_SETLKW",
    "companions_of",
    "main_of",
    "pack_flock",
    "release_read_lock",
    "take_read_lock",
    "try_read_lock",
]

#: Suffixes of the companion files (SQLite: rollback journal, write-ahead log, WAL index).
COMPANION_SUFFIXES = ("-journal", "-wal", "-shm")

# Linux ABI numbers, used when this Python's fcntl module lacks the names.
F_OFD_SETLK: int = getattr(fcntl, "F_OFD_SETLK", 37)
F_OFD_SETLKW: int = getattr(fcntl, "F_OFD_SETLKW", 38)

# struct flock { short l_type; short l_whence; off_t l_start; off_t l_len; pid_t l_pid; } with
# native alignment, padded to the C sizeof so the kernel never reads past our buffer.
_FLOCK = struct.Struct("@hhqqi4x")
_BUSY = frozenset({errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK})
#: Between tries when a flock holder (which we cannot wait on in the kernel) is in the way.
_FLOCK_POLL = 0.005

#: (st_dev, st_ino) of files whose *abandoned* lock wait still hangs in a helper thread.
_PENDING_WAITS: set[tuple[int, int]] = set()
_PENDING_GUARD = threading.Lock()


def companions_of(main: Path) -> tuple[Path, ...]:
    """The companion file names of ``main`` (whether they exist or not)."""
    return tuple(main.with_name(main.name + suffix) for suffix in COMPANION_SUFFIXES)


def main_of(path: Path) -> Path | None:
    """The main file whose companion ``path`` would be by its name, or None."""
    for suffix in COMPANION_SUFFIXES:
        if path.name.endswith(suffix) and len(path.name) > len(suffix):
            return path.with_name(path.name[: -len(suffix)])
    return None


def pack_flock(l_type: int) -> bytes:
    """A whole-file ``struct flock`` for OFD commands (which require ``l_pid`` 0)."""
    return _FLOCK.pack(l_type, os.SEEK_SET, 0, 0, 0)


def try_read_lock(fd: int) -> bool:
    """Take both shared locks without waiting: True if held, False if a holder is in the way.

    Raises ``OSError`` when the file cannot be locked at all (no lock support).
    """
    return _try_both(fd) is None


def _try_both(fd: int) -> str | None:
    """None if both locks are now held, else which family refused: "ofd" or "flock"."""
    try:
        fcntl.fcntl(fd, F_OFD_SETLK, pack_flock(fcntl.F_RDLCK))
    except OSError as exc:
        if exc.errno in _BUSY:
            return "ofd"
        raise
    return None if _add_flock(fd) else "flock"


def release_read_lock(fd: int) -> None:
    """Drop both locks now, so that a waiting writer resumes before the descriptor is closed."""
    with contextlib.suppress(OSError):
        fcntl.fcntl(fd, F_OFD_SETLK, pack_flock(fcntl.F_UNLCK))
    with contextlib.suppress(OSError):
        fcntl.flock(fd, fcntl.LOCK_UN)


def take_read_lock(fd: int, wait: float) -> bool:
    """Take both shared locks on the open file ``fd``, waiting up to ``wait`` seconds.

    True if both are held (release with ``release_read_lock``); False if a
    holder kept them from us that long, or the file cannot be locked.
    """
    deadline = time.monotonic() + wait
    while True:
        try:
            refused = _try_both(fd)
        except OSError:
            return False
        if refused is None:
            return True
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        if refused == "ofd":
            # The kernel wakes the waiter the moment the lock is free (polling would miss it).
            if not _wait_for_ofd(fd, left):
                return False
            if _add_flock(fd):
                return True
        # flock has no waiter we could abandon: poll it.
        time.sleep(min(_FLOCK_POLL, max(0.0, deadline - time.monotonic())))


def _add_flock(fd: int) -> bool:
    """With the OFD lock held, add ``flock(LOCK_SH)``; on refusal drop the OFD lock too."""
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        # Also for errors other than "busy": never hold half of the pair.
        release_read_lock(fd)
        return False
    return True


def _wait_for_ofd(fd: int, timeout: float) -> bool:
    """Wait in a helper thread until the OFD read lock on ``fd`` is ours, at most ``timeout``."""
    try:
        st = os.fstat(fd)
    except OSError:
        return False
    key = (st.st_dev, st.st_ino)
    with _PENDING_GUARD:
        if key in _PENDING_WAITS:
            return False  # an earlier wait timed out and still hangs: the holder keeps its lock long
    # Out of descriptors or threads: a clone without the lock beats no clone.
    try:
        dup = os.dup(fd)
    except OSError:
        return False
    waiter = _OfdWaiter(dup, key)
    try:
        waiter.start()
    except RuntimeError:
        os.close(dup)
        return False
    return waiter.result(timeout)


class _OfdWaiter(threading.Thread):
    """Blocks in ``F_OFD_SETLKW`` on ``dup``, a duplicate of the caller's descriptor (closed when done).

    The duplicate shares the open file description, so a lock it obtains is
    the caller's lock. If the caller gave up, the lock is dropped on arrival.
    """

    def __init__(self, dup: int, key: tuple[int, int]) -> None:
        super().__init__(name="shadowvault-reflink-lock", daemon=True)
        self._fd = dup
        self._key = key
        self._guard = threading.Lock()
        self._done = threading.Event()
        self._granted = False
        self._abandoned = False

    def run(self) -> None:
        granted = False
        try:
            fcntl.fcntl(self._fd, F_OFD_SETLKW, pack_flock(fcntl.F_RDLCK))
            granted = True
        except OSError:
            pass
        finally:
            with self._guard:
                if self._abandoned:
                    if granted:
                        release_read_lock(self._fd)
                    with _PENDING_GUARD:
                        _PENDING_WAITS.discard(self._key)
                self._granted = granted and not self._abandoned
                self._done.set()
            os.close(self._fd)  # the lock lives on in the caller's descriptor

    def result(self, timeout: float) -> bool:
        """True if the lock arrived within ``timeout``; otherwise the wait is abandoned."""
        self._done.wait(timeout)
        with self._guard:
            if not self._done.is_set():
                # Only a wait that hangs on blocks later waits on this file: a finished one must
                # not, or a busy file's next clone would silently go without the lock.
                self._abandoned = True
                with _PENDING_GUARD:
                    _PENDING_WAITS.add(self._key)
                return False
            return self._granted
