"""A restore into a file system that fills up: one line naming the cause, not one per file.

Once the target is full every later write fails the same way, so repeating "No space left on
device" for each file says nothing new. :class:`SpaceGuard` counts those failures instead of
reporting them, tells the restore to stop at the first one (or, with ``--keep-going``, to go on
with what still fits), and words the single line: which target, how much the restore needs and
how much is free there.
"""

from __future__ import annotations

import errno
import os
import threading

__all__ = ["SpaceGuard", "size_text"]


def size_text(n: float) -> str:
    """1536 → '1.5 KiB' (the engine's messages; the CLI has its own renderer)."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def _free_bytes(path: bytes) -> int | None:
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


class SpaceGuard:
    """Counts ENOSPC failures of one restore (thread-safe); ``stopped`` once the restore must end."""

    def __init__(self, target: bytes, *, keep_going: bool) -> None:
        self.target = target
        self.keep_going = keep_going
        self.failures = 0
        self._lock = threading.Lock()

    def absorb(self, error: OSError) -> bool:
        """True when ``error`` is a full file system (counted here, not to be reported per file)."""
        if error.errno not in (errno.ENOSPC, errno.EDQUOT):
            return False
        with self._lock:
            self.failures += 1
        return True

    @property
    def stopped(self) -> bool:
        """The target is full and the restore does not go on (no ``--keep-going``)."""
        return self.failures > 0 and not self.keep_going

    def message(self, needed: int) -> str:
        """The one line: the target, what the restore needs and what is free there."""
        free = _free_bytes(self.target)
        where = os.fsdecode(self.target)
        room = f", {size_text(free)} free" if free is not None else ""
        if self.keep_going:
            return (
                f"{self.failures} entries could not be restored: no space left in {where} "
                f"(the restore needs {size_text(needed)}{room})"
            )
        return (
            f"no space left in {where}: the restore needs {size_text(needed)}{room}; free some space, "
            "restore to another place, or use --keep-going to restore what fits"
        )
