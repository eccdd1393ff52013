"""Platform guards: the system calls that hold writers off while a file is read.

``Guards`` (base.py) is the small interface the reader uses: take/release a read lease,
take/release shared locks. ``LinuxGuards``
implements it with fcntl leases, OFD locks and flock; ``StatOnlyGuards`` is the
fallback that guards nothing, so every strategy degrades to the stat check.
:func:`default_guards` picks the one for the running system.
"""

from __future__ import annotations

import sys

from .base import Guards, StatOnlyGuards
from .linux import LinuxGuards


def default_guards() -> Guards:
    """The guards of the running platform (Linux leases/locks, else stat-only)."""
    # A plain string comparison keeps mypy from pruning the non-Linux branch as unreachable.
    platform: str = sys.platform
    if platform.startswith("linux"):
        return LinuxGuards()
    return StatOnlyGuards()


__all__ = ["Guards", "LinuxGuards", "StatOnlyGuards", "default_guards"]
