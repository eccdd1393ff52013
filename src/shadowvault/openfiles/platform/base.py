"""The guard primitives a platform provides, and the portable fallback that has none.

A *guard* is what holds writers off while a file is read: a lease (Linux read lease,
later a Windows share mode) or a shared lock. The reader only talks to :class:`Guards`;
where a platform offers nothing, :class:`StatOnlyGuards` makes every strategy fall back
to the before/after stat check, which is always done anyway.
"""

from __future__ import annotations

import errno
from typing import Protocol

from ..model import LeaseState, LockState


class Guards(Protocol):
    """Lease and lock operations on an open, read-only file descriptor."""

    name: str
    #: Whether lease breaks arrive as SIGIO (a handler must be installed before leasing).
    lease_signals: bool

    def take_lease(self, fd: int) -> tuple[LeaseState, int | None]:
        """Ask for a read lease: state and errno when not granted."""
        ...

    def lease_intact(self, fd: int) -> bool:
        """True while the lease is held and no break has started."""
        ...

    def release_lease(self, fd: int) -> bool:
        """Release; False if the lease was already gone (revoked by the system)."""
        ...

    def take_locks(self, fd: int) -> tuple[LockState, int | None]:
        """Take shared whole-file locks: state and errno when not granted."""
        ...

    def release_locks(self, fd: int) -> None:
        """Release the shared locks."""
        ...


class StatOnlyGuards:
    """No leases, no locks: every strategy relies on the stat check and the writer index."""

    name = "stat-only"
    lease_signals = False

    def take_lease(self, fd: int) -> tuple[LeaseState, int | None]:
        """Leases are not available here."""
        return LeaseState.UNSUPPORTED, errno.ENOSYS

    def lease_intact(self, fd: int) -> bool:
        """No lease is ever held."""
        return False

    def release_lease(self, fd: int) -> bool:
        """Nothing to release."""
        return False

    def take_locks(self, fd: int) -> tuple[LockState, int | None]:
        """Locks are not available here."""
        return LockState.UNSUPPORTED, errno.ENOSYS

    def release_locks(self, fd: int) -> None:
        """Nothing to release."""


_: Guards = StatOnlyGuards()
