"""Is the process that ran an activity-log session still running it?

A session row keeps the identity of its process: pid, the kernel's boot id and the process's start
time in clock ticks. A session still marked ``running`` whose process is gone — another boot, no
such pid, or a pid reused by a process that started later — reads as ``interrupted``
(``engine.activity``). Linux ``/proc`` only; nothing here touches the log.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["ProcessIdentity", "current_identity", "is_stale", "process_start_ticks", "read_boot_id"]


@dataclass(frozen=True)
class ProcessIdentity:
    """Who runs a session: pid, the kernel boot it runs in, and its start time in clock ticks.

    The start time tells a live session from an unrelated process that got the same pid later.
    """

    pid: int
    boot_id: str
    start_ticks: int | None


def read_boot_id() -> str:
    """This boot's id (empty when the kernel does not say)."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            return f.read().strip()
    except OSError:
        return ""


def process_start_ticks(pid: int) -> int | None:
    """Start time of a *live* process in clock ticks since boot; ``None`` if gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    # The command name (field 2) may contain blanks and parentheses: split after the last ")".
    fields = stat[stat.rindex(b")") + 2 :].split()
    if fields[0] in (b"Z", b"X"):  # killed but not yet reaped: no longer running anything
        return None
    return int(fields[19])  # field 22 of proc_pid_stat(5), counting from field 3 here


def current_identity() -> ProcessIdentity:
    """The identity of the calling process."""
    pid = os.getpid()
    return ProcessIdentity(pid, read_boot_id(), process_start_ticks(pid))


def is_stale(stored: ProcessIdentity, boot_id: str, start_ticks_of: Callable[[int], int | None]) -> bool:
    """True when the process that ran a session can no longer be running it.

    Pure apart from ``start_ticks_of`` (pid → start ticks or ``None``), so it is testable alone.
    """
    if stored.boot_id and boot_id and stored.boot_id != boot_id:
        return True
    ticks = start_ticks_of(stored.pid)
    if ticks is None:
        return True
    return stored.start_ticks is not None and ticks != stored.start_ticks
