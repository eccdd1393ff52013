"""Linux guards: fcntl read leases (lease.py) and OFD + flock shared locks (locks.py)."""

from __future__ import annotations

from .. import lease, locks
from ..model import LeaseState, LockState
from .base import Guards


class LinuxGuards:
    """Read leases and shared locks through the Linux fcntl/flock system calls."""

    name = "linux"
    lease_signals = True

    def take_lease(self, fd: int) -> tuple[LeaseState, int | None]:
        """``F_SETLEASE F_RDLCK``."""
        return lease.take_read_lease(fd)

    def lease_intact(self, fd: int) -> bool:
        """``F_GETLEASE`` still says ``F_RDLCK``."""
        return lease.lease_intact(fd)

    def release_lease(self, fd: int) -> bool:
        """``F_SETLEASE F_UNLCK``; False when the kernel had revoked the lease."""
        return lease.release_lease(fd)

    def take_locks(self, fd: int) -> tuple[LockState, int | None]:
        """``F_OFD_SETLK F_RDLCK`` on the whole file plus ``flock(LOCK_SH)``."""
        return locks.take_shared_locks(fd)

    def release_locks(self, fd: int) -> None:
        """Drop both shared locks."""
        locks.release_shared_locks(fd)


_: Guards = LinuxGuards()
