"""Linux read leases (``fcntl F_SETLEASE F_RDLCK``) and lease-break bookkeeping.

Facts this module relies on (fcntl(2), "Leases"):

* a read lease can only be placed on a descriptor opened read-only; the request fails
  with ``EAGAIN`` while any process has the file open for writing (or mapped
  shared-writable), with ``EACCES`` unless we own the file or have ``CAP_LEASE``, and
  with ``EINVAL`` where the file system or ``/proc/sys/fs/leases-enable`` says no;
* when another process opens the file for writing (or truncates it), the kernel sends
  our process a signal (SIGIO unless ``F_SETSIG`` chose another) and holds the writer in
  ``open()`` until we release the lease or ``/proc/sys/fs/lease-break-time`` seconds pass,
  after which it removes the lease itself;
* during a break ``F_GETLEASE`` reports ``F_UNLCK``; releasing a lease the kernel
  already removed fails with ``EAGAIN`` (verified on Linux 6.x) — that is how a revoked
  lease is told apart from one we outlasted.

SIGIO's default action terminates the process, so :class:`BreakWatch` must be installed
(main thread only) before the first lease is taken.
"""

from __future__ import annotations

import errno
import fcntl
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from types import FrameType

from .model import LeaseState

LEASE_BREAK_TIME_PATH = "/proc/sys/fs/lease-break-time"
DEFAULT_LEASE_BREAK_TIME = 45.0

_F_RDLCK = fcntl.F_RDLCK
_F_UNLCK = fcntl.F_UNLCK
# Python exposes these on Linux; the numbers are the kernel ABI if a build lacks them.
_F_SETLEASE: int = getattr(fcntl, "F_SETLEASE", 1024)
_F_GETLEASE: int = getattr(fcntl, "F_GETLEASE", 1025)


def take_read_lease(fd: int) -> tuple[LeaseState, int | None]:
    """Ask for a read lease on ``fd`` (opened ``O_RDONLY``); returns the state and errno if not granted."""
    try:
        fcntl.fcntl(fd, _F_SETLEASE, _F_RDLCK)
    except OSError as e:
        if e.errno in (errno.EAGAIN, errno.EWOULDBLOCK):
            return LeaseState.REFUSED, e.errno
        return LeaseState.UNSUPPORTED, e.errno
    return LeaseState.GRANTED, None


def lease_intact(fd: int) -> bool:
    """True while ``fd`` holds its read lease and no writer has started breaking it."""
    try:
        return bool(fcntl.fcntl(fd, _F_GETLEASE) == _F_RDLCK)
    except OSError:
        return False


def release_lease(fd: int) -> bool:
    """Give the lease back; ``False`` if there was none left (the kernel had revoked it)."""
    try:
        fcntl.fcntl(fd, _F_SETLEASE, _F_UNLCK)
    except OSError as e:
        if e.errno in (errno.EAGAIN, errno.EWOULDBLOCK, errno.ENOENT):
            return False
        raise
    return True


def read_lease_break_time(path: str = LEASE_BREAK_TIME_PATH) -> float:
    """Seconds the kernel lets a lease holder keep a writer waiting (45 when unreadable)."""
    try:
        with open(path, encoding="ascii") as f:
            return float(f.read().strip())
    except (OSError, ValueError):
        return DEFAULT_LEASE_BREAK_TIME


_Handler = Callable[[int, FrameType | None], object] | int | signal.Handlers | None


class BreakWatch:
    """Owns the SIGIO handler for the session and timestamps every lease-break signal.

    The signal does not say which descriptor it is for (Python handlers get no
    ``siginfo``): an attempt learns of a break from :func:`lease_intact` on its own
    descriptor and uses the timestamps only to say how long the writer waited.
    A Python-level handler that was installed before us is still called.
    """

    signum = signal.SIGIO

    def __init__(self) -> None:
        self._previous: _Handler = None
        self._installed = False
        # Bounded: only breaks during the current read matter.
        self.times: deque[float] = deque(maxlen=1024)

    @staticmethod
    def can_install() -> bool:
        """Signal handlers can only be installed from the main thread."""
        return threading.current_thread() is threading.main_thread()

    def install(self) -> None:
        """Install the handler; raises ``ValueError`` outside the main thread."""
        if self._installed:
            return
        self._previous = signal.signal(self.signum, self._on_signal)
        self._installed = True

    @property
    def installed(self) -> bool:
        """Whether our handler is in place."""
        return self._installed

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.times.append(time.monotonic())
        prev = self._previous
        if callable(prev):
            prev(signum, frame)

    def first_break_since(self, since: float) -> float | None:
        """Monotonic time of the first break signal at or after ``since``."""
        for t in self.times:
            if t >= since:
                return t
        return None

    def restore(self) -> None:
        """Put the previous handler back (SIG_DFL if there was none we could name)."""
        if not self._installed:
            return
        prev = self._previous
        signal.signal(self.signum, prev if prev is not None else signal.SIG_DFL)
        self._installed = False
