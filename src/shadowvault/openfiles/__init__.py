"""Open-file engine: open, guard, read and classify ONE file at a time.

Concepts (DESIGN "The three outcomes", "Open-file strategies", "Retries"):

* **Strategy** — per backup set: ``try-deny-write`` (default; hold writers off with a
  read lease, read anyway if the file is already open for writing), ``deny-write``
  (lease required, else the attempt fails and is retried), ``prevent-write`` (lease,
  else a shared OFD lock + ``flock`` that lock-respecting writers honour),
  ``allow-write`` (no guard; a momentary lease probe only detects writers).
* **Guard** — what holds writers off: a Linux read lease (writers opening the file wait
  in ``open()`` until we finish, up to ``lease-break-time``), or shared locks. Where
  leases are unavailable (not owner, no CAP_LEASE, NFS, FUSE) the session warns once
  and relies on the stat check.
* **Attempt** — the facts of one read (lease/lock results, lease break outlasted or
  revoked, which stat fields changed, which processes had the file open for writing).
* **Classification** — ``ok`` / ``suspect`` / ``failed`` with a short stable **Reason**
  code and a sentence; :func:`decide` turns attempts + strategy + :class:`RetryPolicy`
  into a :class:`Retry` or the final :class:`FileOutcome`. The engine owns the waiting,
  with a non-blocking :class:`RetryQueue`.
* **Writer index** — /proc scan by (device, inode) naming processes (pid, command) that
  have files open for writing or mapped shared-writable.

Typical use (main thread)::

    with OpenFiles(on_warning=log.warning) as of:
        attempts = []
        while True:
            with of.attempt(path, Strategy.TRY_DENY_WRITE, number=len(attempts) + 1) as att:
                if att.refused is None:
                    for chunk in FastCDC(...).cut_stream(att): ...
            attempts.append(att.result())
            step = decide(attempts, strategy, policy)
            if isinstance(step, FileOutcome): break
            ...  # queue in RetryQueue, come back after step.after seconds

Nothing here knows repositories, blobs, snapshots or the directory walk.
"""

from __future__ import annotations

from .classify import Judgement, Verdict, decide, judge
from .model import (
    Attempt,
    BreakState,
    Classification,
    FileOutcome,
    LeaseState,
    LockState,
    Reason,
    Retry,
    Strategy,
    WriterInfo,
)
from .reader import FileAttempt, OpenFiles
from .retry import RetryPolicy, RetryQueue, validate_retry_interval, validate_retry_times
from .writers import WriterIndex

__all__ = [
    "Attempt",
    "BreakState",
    "Classification",
    "FileAttempt",
    "FileOutcome",
    "Judgement",
    "LeaseState",
    "LockState",
    "OpenFiles",
    "Reason",
    "Retry",
    "RetryPolicy",
    "RetryQueue",
    "Strategy",
    "Verdict",
    "WriterIndex",
    "WriterInfo",
    "decide",
    "judge",
    "validate_retry_interval",
    "validate_retry_times",
]
