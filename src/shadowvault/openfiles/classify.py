"""Pure classification: one attempt → verdict; all attempts + policy → retry or final outcome.

``judge`` looks at one :class:`Attempt`'s facts under a strategy; ``decide`` turns the
sequence of attempts so far into either a :class:`Retry` or the file's
:class:`FileOutcome`. No I/O, no clock: the engine owns time and the retry queue.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

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
    describe_writers,
)
from .retry import RetryPolicy
from .strategy import STRICT, Action, resolve


class Verdict(StrEnum):
    """How one attempt came out."""

    OK = "ok"
    SUSPECT = "suspect"
    RETRYABLE = "retryable"  # a failed attempt that may succeed later
    FINAL = "final"  # a failure no retry will fix (gone, no permission)


# EACCES will not go away in a few seconds, and a vanished file will not come back:
# retrying them would only delay the session.
_FINAL_ERRORS = frozenset({Reason.VANISHED, Reason.PERMISSION_DENIED, Reason.NOT_REGULAR})


@dataclass(frozen=True)
class Judgement:
    """Verdict on one attempt and the reason behind it."""

    verdict: Verdict
    reason: Reason


def judge(attempt: Attempt, strategy: Strategy) -> Judgement:
    """Classify a single attempt under ``strategy`` (see DESIGN "Open-file strategies")."""
    if attempt.error in _FINAL_ERRORS:
        return Judgement(Verdict.FINAL, attempt.error)
    action = resolve(strategy, attempt.lease, attempt.lock, bool(attempt.writers))
    if action is Action.FAIL_ATTEMPT:
        if attempt.lock is LockState.REFUSED:
            return Judgement(Verdict.RETRYABLE, Reason.LOCK_REFUSED)
        return Judgement(Verdict.RETRYABLE, _writing_reason(attempt))
    if attempt.error is not None:
        return Judgement(Verdict.RETRYABLE, attempt.error)

    problem: Reason | None = None
    if attempt.changed:
        problem = Reason.CHANGED_DURING_READ
    elif attempt.lease_break is BreakState.REVOKED:
        problem = Reason.LEASE_BROKEN
    elif action is Action.READ_UNGUARDED and (attempt.writers or attempt.lease is LeaseState.REFUSED):
        # Open for writing and nothing held the writer off: suspect even if unchanged.
        problem = _writing_reason(attempt)
    if problem is not None:
        return Judgement(Verdict.RETRYABLE if strategy in STRICT else Verdict.SUSPECT, problem)

    if action is Action.READ_UNDER_LEASE:
        return Judgement(Verdict.OK, Reason.READ_UNDER_LEASE)
    if action is Action.READ_UNDER_LOCK:
        return Judgement(Verdict.OK, Reason.READ_UNDER_LOCK)
    return Judgement(Verdict.OK, Reason.UNCHANGED)


def _writing_reason(attempt: Attempt) -> Reason:
    # A refused lease proves a writer exists even when /proc does not show it
    # (another user's process, or our own).
    return Reason.OPEN_FOR_WRITING if attempt.writers else Reason.LEASE_REFUSED


def decide(attempts: Sequence[Attempt], strategy: Strategy, policy: RetryPolicy) -> Retry | FileOutcome:
    """Retry the file, or give its final outcome, from the attempts made so far (at least one).

    A retryable failure is retried while fewer than ``policy.max_attempts`` attempts were
    made, then the file is ``failed``. A suspect read is retried only with
    ``policy.on_change``, and stays ``suspect`` if it never settles.

    A clean single attempt (granted lease, no error, change or writer: every small file of a
    typical first backup) leaves only its lock and lease-break states free: ``judge`` reads nothing
    else, and ``message`` reads nothing else for the reasons of an ``ok`` outcome. Its outcome is
    computed once per combination and shared (a frozen value): deciding it afresh cost the walking
    thread ~5 µs per file (issue 10).
    """
    if len(attempts) == 1:
        a = attempts[0]
        if a.lease is LeaseState.GRANTED and a.error is None and not a.changed and not a.writers:
            key = (strategy, a.lock, a.lease_break)
            known = _CLEAN_SINGLE.get(key)
            if known is None:
                step = _decide(attempts, strategy, policy)
                if not isinstance(step, FileOutcome) or step.classification is not Classification.OK:
                    return step
                known = _CLEAN_SINGLE[key] = step  # an ok outcome does not depend on the policy
            return known
    return _decide(attempts, strategy, policy)


# (strategy, lock state, lease-break state) → the ok outcome of a clean single attempt (decide()).
_CLEAN_SINGLE: dict[tuple[Strategy, LockState, BreakState], FileOutcome] = {}


def _decide(attempts: Sequence[Attempt], strategy: Strategy, policy: RetryPolicy) -> Retry | FileOutcome:
    """``decide`` computed from the attempts' facts, never remembered."""
    if not attempts:
        raise ValueError("decide() needs at least one attempt")
    last = attempts[-1]
    j = judge(last, strategy)
    count = len(attempts)
    can_retry = count < policy.max_attempts
    if j.verdict is Verdict.OK:
        return _outcome(Classification.OK, j.reason, attempts)
    if j.verdict is Verdict.FINAL:
        return _outcome(Classification.FAILED, j.reason, attempts)
    if j.verdict is Verdict.RETRYABLE:
        if can_retry:
            return Retry(after=policy.interval, number=last.number + 1, reason=j.reason)
        return _outcome(Classification.FAILED, j.reason, attempts)
    if policy.on_change and can_retry:
        return Retry(after=policy.interval, number=last.number + 1, reason=j.reason)
    return _outcome(Classification.SUSPECT, j.reason, attempts)


def _outcome(cls: Classification, reason: Reason, attempts: Sequence[Attempt]) -> FileOutcome:
    writers = _writers(attempts)
    return FileOutcome(cls, reason, message(reason, attempts[-1], writers), len(attempts), writers)


def _writers(attempts: Sequence[Attempt]) -> tuple[WriterInfo, ...]:
    # The last attempt's writers are the current truth; if it saw none (lease granted,
    # or the writer left), still name whoever blocked the earlier attempts.
    if attempts[-1].writers:
        return attempts[-1].writers
    seen: dict[WriterInfo, None] = {}
    for a in attempts:
        for w in a.writers:
            seen.setdefault(w, None)
    return tuple(seen)


def message(reason: Reason, attempt: Attempt, writers: Sequence[WriterInfo]) -> str:
    """Human sentence for ``reason``, e.g. ``open for writing by postgres (pid 812)``."""
    who = describe_writers(writers)
    if reason is Reason.OPEN_FOR_WRITING:
        return f"open for writing by {who}"
    if reason is Reason.LEASE_REFUSED:
        return "open for writing by a process that could not be identified"
    if reason is Reason.CHANGED_DURING_READ:
        what = ", ".join(attempt.changed) or "contents"
        text = f"changed during the read ({what})"
        return f"{text}; open for writing by {who}" if who else text
    if reason is Reason.LEASE_BROKEN:
        return "a writer opened the file and the kernel revoked our read lease before the read finished"
    if reason is Reason.LOCK_REFUSED:
        text = "another process holds a write lock on it"
        return f"{text}; open for writing by {who}" if who else text
    if reason is Reason.VANISHED:
        return "no longer exists (removed before it could be read)"
    if reason is Reason.PERMISSION_DENIED:
        return f"permission denied ({attempt.detail})" if attempt.detail else "permission denied"
    if reason is Reason.NOT_REGULAR:
        return "is no longer a regular file"
    if reason is Reason.IO_ERROR:
        return f"read error ({attempt.detail})" if attempt.detail else "read error"
    if reason is Reason.READ_UNDER_LEASE:
        return "read under a read lease"
    if reason is Reason.READ_UNDER_LOCK:
        text = "read under a shared lock, unchanged"
        return f"{text}; open for writing by {who}" if who else text
    if reason is Reason.UNCHANGED:
        return "read; unchanged during the read"
    return "read from a snapshot"
