"""Pure decisions: strategy table, stat comparison, per-attempt verdicts and retry/outcome."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from shadowvault.openfiles import (
    Attempt,
    BreakState,
    Classification,
    FileOutcome,
    LeaseState,
    LockState,
    Reason,
    Retry,
    RetryPolicy,
    Strategy,
    Verdict,
    WriterInfo,
    decide,
    judge,
)
from shadowvault.openfiles.classify import _decide
from shadowvault.openfiles.stat_check import changed_fields
from shadowvault.openfiles.strategy import Action, after_lease, after_lock, resolve

PG = WriterInfo(812, "postgres")
T, D, P, A = Strategy.TRY_DENY_WRITE, Strategy.DENY_WRITE, Strategy.PREVENT_WRITE, Strategy.ALLOW_WRITE
GRANTED, REFUSED, UNSUP = LeaseState.GRANTED, LeaseState.REFUSED, LeaseState.UNSUPPORTED


@dataclass(frozen=True)
class St:
    st_size: int = 10
    st_mtime_ns: int = 100
    st_ctime_ns: int = 100
    st_ino: int = 7
    st_dev: int = 1


def test_stat_unchanged() -> None:
    assert changed_fields(St(), St(), St()) == ()


def test_stat_each_field() -> None:
    assert changed_fields(St(), St(st_size=11), St()) == ("size",)
    assert changed_fields(St(), St(st_mtime_ns=1), St()) == ("mtime",)
    assert changed_fields(St(), St(st_ctime_ns=1), St()) == ("ctime",)
    assert changed_fields(St(), St(), St(st_ino=8)) == ("inode",)
    assert changed_fields(St(), St(), St(st_dev=2)) == ("inode",)
    assert changed_fields(St(), St(st_size=0, st_mtime_ns=0), None) == ("size", "mtime", "removed")


@pytest.mark.parametrize(
    ("strategy", "lease", "writers", "expected"),
    [
        (T, GRANTED, False, Action.READ_UNDER_LEASE),
        (T, REFUSED, True, Action.READ_UNGUARDED),
        (T, UNSUP, True, Action.READ_UNGUARDED),
        (D, GRANTED, False, Action.READ_UNDER_LEASE),
        (D, REFUSED, False, Action.FAIL_ATTEMPT),
        (D, UNSUP, True, Action.FAIL_ATTEMPT),
        (D, UNSUP, False, Action.READ_UNGUARDED),
        (P, GRANTED, False, Action.READ_UNDER_LEASE),
        (P, REFUSED, True, Action.TAKE_LOCK),
        (P, UNSUP, False, Action.TAKE_LOCK),
        (A, GRANTED, False, Action.READ_UNGUARDED),
        (A, REFUSED, True, Action.READ_UNGUARDED),
    ],
)
def test_strategy_table(strategy: Strategy, lease: LeaseState, writers: bool, expected: Action) -> None:
    assert after_lease(strategy, lease, writers) is expected


def test_lock_results() -> None:
    assert after_lock(LockState.GRANTED) is Action.READ_UNDER_LOCK
    assert after_lock(LockState.REFUSED) is Action.FAIL_ATTEMPT
    assert after_lock(LockState.UNSUPPORTED) is Action.READ_UNGUARDED
    assert resolve(P, REFUSED, LockState.REFUSED, True) is Action.FAIL_ATTEMPT


def att(n: int = 1, **kw: object) -> Attempt:
    return Attempt(number=n, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("strategy", "attempt", "verdict", "reason"),
    [
        # clean reads
        (T, att(lease=GRANTED), Verdict.OK, Reason.READ_UNDER_LEASE),
        (D, att(lease=GRANTED, lease_break=BreakState.OUTLASTED), Verdict.OK, Reason.READ_UNDER_LEASE),
        (A, att(lease=GRANTED), Verdict.OK, Reason.UNCHANGED),
        (T, att(lease=UNSUP), Verdict.OK, Reason.UNCHANGED),
        (P, att(lease=REFUSED, lock=LockState.GRANTED, writers=(PG,)), Verdict.OK, Reason.READ_UNDER_LOCK),
        # writers that nothing held off
        (T, att(lease=REFUSED, writers=(PG,)), Verdict.SUSPECT, Reason.OPEN_FOR_WRITING),
        (T, att(lease=REFUSED), Verdict.SUSPECT, Reason.LEASE_REFUSED),
        (A, att(lease=REFUSED, writers=(PG,)), Verdict.SUSPECT, Reason.OPEN_FOR_WRITING),
        (T, att(lease=UNSUP, writers=(PG,)), Verdict.SUSPECT, Reason.OPEN_FOR_WRITING),
        (D, att(lease=REFUSED, writers=(PG,)), Verdict.RETRYABLE, Reason.OPEN_FOR_WRITING),
        (D, att(lease=UNSUP, writers=(PG,)), Verdict.RETRYABLE, Reason.OPEN_FOR_WRITING),
        (
            P,
            att(lease=REFUSED, lock=LockState.REFUSED, writers=(PG,)),
            Verdict.RETRYABLE,
            Reason.LOCK_REFUSED,
        ),
        (
            P,
            att(lease=REFUSED, lock=LockState.UNSUPPORTED, writers=(PG,)),
            Verdict.RETRYABLE,
            Reason.OPEN_FOR_WRITING,
        ),
        # changes and revoked leases
        (A, att(lease=GRANTED, changed=("size",)), Verdict.SUSPECT, Reason.CHANGED_DURING_READ),
        (
            T,
            att(lease=REFUSED, writers=(PG,), changed=("mtime",)),
            Verdict.SUSPECT,
            Reason.CHANGED_DURING_READ,
        ),
        (T, att(lease=GRANTED, lease_break=BreakState.REVOKED), Verdict.SUSPECT, Reason.LEASE_BROKEN),
        (D, att(lease=GRANTED, lease_break=BreakState.REVOKED), Verdict.RETRYABLE, Reason.LEASE_BROKEN),
        (D, att(lease=UNSUP, changed=("size",)), Verdict.RETRYABLE, Reason.CHANGED_DURING_READ),
        (
            P,
            att(lease=REFUSED, lock=LockState.GRANTED, changed=("size",)),
            Verdict.RETRYABLE,
            Reason.CHANGED_DURING_READ,
        ),
        # errors
        (T, att(error=Reason.VANISHED), Verdict.FINAL, Reason.VANISHED),
        (D, att(error=Reason.PERMISSION_DENIED), Verdict.FINAL, Reason.PERMISSION_DENIED),
        (A, att(error=Reason.NOT_REGULAR), Verdict.FINAL, Reason.NOT_REGULAR),
        (T, att(lease=GRANTED, error=Reason.IO_ERROR), Verdict.RETRYABLE, Reason.IO_ERROR),
    ],
)
def test_judge(strategy: Strategy, attempt: Attempt, verdict: Verdict, reason: Reason) -> None:
    j = judge(attempt, strategy)
    assert (j.verdict, j.reason) == (verdict, reason)


def test_deny_write_retries_then_fails_naming_the_writer() -> None:
    policy = RetryPolicy(times=2, interval=7)
    busy = att(1, lease=REFUSED, writers=(PG,))
    step = decide([busy], D, policy)
    assert step == Retry(after=7.0, number=2, reason=Reason.OPEN_FOR_WRITING)
    step = decide([busy, att(2, lease=REFUSED, writers=(PG,))], D, policy)
    assert isinstance(step, Retry) and step.number == 3
    final = decide([busy, busy, att(3, lease=REFUSED, writers=(PG,))], D, policy)
    assert isinstance(final, FileOutcome)
    assert final.classification is Classification.FAILED
    assert final.reason is Reason.OPEN_FOR_WRITING
    assert final.attempts == 3
    assert final.writers == (PG,)
    assert final.message == "open for writing by postgres (pid 812)"


def test_retry_succeeds_and_keeps_earlier_writers() -> None:
    out = decide([att(1, lease=REFUSED, writers=(PG,)), att(2, lease=GRANTED)], D, RetryPolicy(times=5))
    assert isinstance(out, FileOutcome)
    assert (out.classification, out.attempts, out.writers) == (Classification.OK, 2, (PG,))


def test_no_retries_means_one_attempt() -> None:
    out = decide([att(lease=REFUSED, writers=(PG,))], D, RetryPolicy())
    assert isinstance(out, FileOutcome) and out.classification is Classification.FAILED


def test_suspect_is_final_unless_retry_on_change() -> None:
    changed = att(1, lease=GRANTED, changed=("size", "mtime"))
    out = decide([changed], A, RetryPolicy(times=3))
    assert isinstance(out, FileOutcome)
    assert out.classification is Classification.SUSPECT
    assert out.message == "changed during the read (size, mtime)"
    policy = RetryPolicy(times=1, interval=2, on_change=True)
    assert decide([changed], A, policy) == Retry(2.0, 2, Reason.CHANGED_DURING_READ)
    out = decide([changed, att(2, lease=GRANTED, changed=("size",))], A, policy)
    assert isinstance(out, FileOutcome)
    assert (out.classification, out.attempts) == (Classification.SUSPECT, 2)
    out = decide([changed, att(2, lease=GRANTED)], A, policy)
    assert isinstance(out, FileOutcome) and out.classification is Classification.OK


def test_final_errors_are_not_retried() -> None:
    out = decide([att(error=Reason.VANISHED)], D, RetryPolicy(times=10))
    assert isinstance(out, FileOutcome)
    assert (out.classification, out.reason, out.attempts) == (Classification.FAILED, Reason.VANISHED, 1)
    io = att(lease=GRANTED, error=Reason.IO_ERROR, detail="Input/output error")
    assert isinstance(decide([io], T, RetryPolicy(times=1)), Retry)
    out = decide([io], T, RetryPolicy())
    assert isinstance(out, FileOutcome) and out.message == "read error (Input/output error)"


def test_prevent_write_ok_still_names_the_writer() -> None:
    out = decide([att(lease=REFUSED, lock=LockState.GRANTED, writers=(PG,))], P, RetryPolicy())
    assert isinstance(out, FileOutcome)
    assert out.classification is Classification.OK
    assert out.writers == (PG,)
    assert "postgres (pid 812)" in out.message


def test_decide_needs_an_attempt() -> None:
    with pytest.raises(ValueError):
        decide([], T, RetryPolicy())


_SINGLE_ATTEMPTS = [
    Attempt(1, lease, lock, brk, changed, writers, error, bytes_read=n)
    for lease in LeaseState
    for lock in LockState
    for brk in BreakState
    for changed in ((), ("size",))
    for writers in ((), (PG,))
    for error in (None, Reason.IO_ERROR, Reason.VANISHED)
    for n in (0, 7)
]


@pytest.mark.parametrize("strategy", list(Strategy))
@pytest.mark.parametrize("policy", [RetryPolicy(), RetryPolicy(times=2, interval=1, on_change=True)])
def test_a_remembered_decision_is_the_computed_one(strategy: Strategy, policy: RetryPolicy) -> None:
    """decide() remembers the ok outcome of a clean single attempt: with every combination of facts
    decided once (the memo filled by whichever attempt came first), each decides as computed
    afresh, and clean attempts differing only in the bytes read share one outcome value."""
    fresh = [_decide([a], strategy, policy) for a in _SINGLE_ATTEMPTS]
    for attempt in _SINGLE_ATTEMPTS:
        decide([attempt], strategy, policy)
    for attempt, want in zip(_SINGLE_ATTEMPTS, fresh, strict=True):
        assert decide([attempt], strategy, policy) == want, attempt
    clean = [a for a in _SINGLE_ATTEMPTS if a.lease is GRANTED and not (a.changed or a.writers or a.error)]
    alike = [a for a in clean if a.lock is LockState.NOT_TRIED and a.lease_break is BreakState.NONE]
    assert len(alike) == 2 and decide([alike[0]], strategy, policy) is decide([alike[1]], strategy, policy)
