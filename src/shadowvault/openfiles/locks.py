"""Shared whole-file locks for prevent-write: an OFD read lock plus ``flock(LOCK_SH)``.

Lock-respecting writers use one of two families: POSIX/OFD byte-range locks (SQLite,
most databases) or BSD ``flock`` (many scripts and tools). A shared lock in each family
keeps such a writer from taking its write lock while we read. OFD locks belong to our
open file description, so closing some *other* descriptor of the same file in this
process does not drop them (the classic POSIX-lock trap).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import struct
import time

from .model import LockState

# Linux ABI numbers, used when this Python's fcntl module lacks the names.
F_OFD_GETLK: int = getattr(fcntl, "F_OFD_GETLK", 36)
F_OFD_SETLK: int = getattr(fcntl, "F_OFD_SETLK", 37)
F_OFD_SETLKW: int = getattr(fcntl, "F_OFD_SETLKW", 38)

# struct flock { short l_type; short l_whence; off_t l_start; off_t l_len; pid_t l_pid; },
# native alignment; pad to the C sizeof so the kernel never reads past our buffer.
_FLOCK = struct.Struct("hhqqi4x")

_REFUSED = frozenset({errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK})


def pack_flock(l_type: int, start: int = 0, length: int = 0, whence: int = 0) -> bytes:
    """A ``struct flock`` for OFD commands (``l_pid`` must be 0); length 0 means "to EOF and beyond"."""
    return _FLOCK.pack(l_type, whence, start, length, 0)


def unpack_flock(data: bytes) -> tuple[int, int, int, int, int]:
    """(l_type, l_whence, l_start, l_len, l_pid) from a ``struct flock``."""
    l_type, whence, start, length, pid = _FLOCK.unpack(data)
    return l_type, whence, start, length, pid


# A database committing in a loop holds its write lock nearly all the time and releases it for
# a few milliseconds between transactions; polling briefly catches such a gap, where a single
# try would fail every attempt of a busy file. Bounded, so a file locked for good costs little.
LOCK_WAIT = 0.25
_LOCK_POLL = 0.001


def take_shared_locks(fd: int, wait: float = LOCK_WAIT) -> tuple[LockState, int | None]:
    """Take the OFD read lock on the whole file, then ``flock(LOCK_SH)``; both or neither.

    A refused request is repeated every millisecond for up to ``wait`` seconds.
    """
    deadline = time.monotonic() + wait
    while True:
        state, err = _try_shared_locks(fd)
        if state is not LockState.REFUSED or time.monotonic() >= deadline:
            return state, err
        time.sleep(_LOCK_POLL)


def _try_shared_locks(fd: int) -> tuple[LockState, int | None]:
    try:
        fcntl.fcntl(fd, F_OFD_SETLK, pack_flock(fcntl.F_RDLCK))
    except OSError as e:
        return (LockState.REFUSED if e.errno in _REFUSED else LockState.UNSUPPORTED), e.errno
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as e:
        release_shared_locks(fd)
        return (LockState.REFUSED if e.errno in _REFUSED else LockState.UNSUPPORTED), e.errno
    return LockState.GRANTED, None


def release_shared_locks(fd: int) -> None:
    """Drop both locks (also dropped by closing the descriptor; done early so writers resume at once)."""
    with contextlib.suppress(OSError):
        fcntl.fcntl(fd, F_OFD_SETLK, pack_flock(fcntl.F_UNLCK))
    with contextlib.suppress(OSError):
        fcntl.flock(fd, fcntl.LOCK_UN)


def conflicting_lock(fd: int) -> tuple[int, int, int, int, int] | None:
    """The first lock that would block a whole-file write lock on ``fd`` (``F_OFD_GETLK``), or None."""
    out = fcntl.fcntl(fd, F_OFD_GETLK, pack_flock(fcntl.F_WRLCK))
    found = unpack_flock(out)
    return None if found[0] == fcntl.F_UNLCK else found
