"""Pure strategy table: what to do after the lease (and maybe lock) request came back.

The reader and the classifier both consult these functions, so the decision about
whether a read happened, and under which guard, lives in exactly one place.
"""

from __future__ import annotations

from enum import StrEnum

from .model import LeaseState, LockState, Strategy


class Action(StrEnum):
    """What the reader does next."""

    READ_UNDER_LEASE = "read-under-lease"
    READ_UNDER_LOCK = "read-under-lock"
    READ_UNGUARDED = "read-unguarded"
    TAKE_LOCK = "take-lock"
    FAIL_ATTEMPT = "fail-attempt"


# Strategies whose bad reads become failed attempts (retried) rather than suspect files.
STRICT = frozenset({Strategy.DENY_WRITE, Strategy.PREVENT_WRITE})


def lease_is_probe(strategy: Strategy) -> bool:
    """allow-write must not hold writers off: its lease is only a probe, released at once.

    A granted probe proves nobody had the file open for writing; a refused one proves
    somebody did, which is more current than the session's writer index.
    """
    return strategy is Strategy.ALLOW_WRITE


def after_lease(strategy: Strategy, lease: LeaseState, writers_known: bool) -> Action:
    """Next step once the lease request returned ``lease``.

    ``writers_known`` says whether the writer index names a process with the file open
    for writing; it only matters when leases are unsupported and deny-write has to
    decide from the index alone.
    """
    if strategy is Strategy.ALLOW_WRITE:
        return Action.READ_UNGUARDED
    if lease is LeaseState.GRANTED:
        return Action.READ_UNDER_LEASE
    if strategy is Strategy.PREVENT_WRITE:
        return Action.TAKE_LOCK
    if strategy is Strategy.DENY_WRITE:
        if lease is LeaseState.REFUSED or writers_known:
            return Action.FAIL_ATTEMPT
        return Action.READ_UNGUARDED
    return Action.READ_UNGUARDED


def after_lock(lock: LockState) -> Action:
    """Next step for prevent-write once the shared-lock request returned ``lock``."""
    if lock is LockState.GRANTED:
        return Action.READ_UNDER_LOCK
    if lock is LockState.REFUSED:
        return Action.FAIL_ATTEMPT
    # No lock support on this file system: read and let the stat check judge.
    return Action.READ_UNGUARDED


def resolve(strategy: Strategy, lease: LeaseState, lock: LockState, writers_known: bool) -> Action:
    """The guard a read ran under (or ``FAIL_ATTEMPT``), given every guard result."""
    action = after_lease(strategy, lease, writers_known)
    if action is Action.TAKE_LOCK:
        action = after_lock(lock)
    return action
