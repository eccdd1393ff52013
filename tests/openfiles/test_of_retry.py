"""RetryPolicy bounds and the non-blocking RetryQueue."""

from __future__ import annotations

import pytest

from shadowvault.openfiles import RetryPolicy, RetryQueue


@pytest.mark.parametrize("times", [0, 1, 10])
@pytest.mark.parametrize("interval", [0, 0.5, 999])
def test_policy_accepts_the_documented_range(times: int, interval: float) -> None:
    p = RetryPolicy(times=times, interval=interval, on_change=True)
    assert p.max_attempts == times + 1
    assert p.interval == interval


@pytest.mark.parametrize("times", [-1, 11, 2.0, True, "3", None])
def test_policy_rejects_times_outside_0_to_10(times: object) -> None:
    with pytest.raises(ValueError, match=r"retry_times must be an integer from 0 to 10"):
        RetryPolicy(times=times)  # type: ignore[arg-type]


@pytest.mark.parametrize("interval", [-0.1, 999.5, 1000, float("nan"), float("inf"), False, "5"])
def test_policy_rejects_interval_outside_0_to_999(interval: object) -> None:
    with pytest.raises(ValueError, match=r"retry_interval must be a number of seconds from 0 to 999"):
        RetryPolicy(interval=interval)  # type: ignore[arg-type]


def test_policy_rejects_non_bool_on_change() -> None:
    with pytest.raises(ValueError, match="retry_on_change"):
        RetryPolicy(on_change=1)  # type: ignore[arg-type]


def test_queue_pops_only_due_items_in_time_then_push_order() -> None:
    q: RetryQueue[str] = RetryQueue()
    assert len(q) == 0 and q.next_due() is None and q.pop_due(1e9) == []
    q.push("late", 30.0)
    q.push("a", 10.0)
    q.push("b", 10.0)
    q.push("early", 5.0)
    assert len(q) == 4
    assert q.next_due() == 5.0
    assert q.pop_due(4.99) == []
    assert q.pop_due(10.0) == ["early", "a", "b"]
    assert q.next_due() == 30.0 and len(q) == 1
    q.push("c", 20.0)
    assert q.pop_due(100.0) == ["c", "late"]
    assert len(q) == 0 and q.next_due() is None


def test_queue_holds_unorderable_items() -> None:
    q: RetryQueue[dict[str, int]] = RetryQueue()
    q.push({"x": 1}, 1.0)
    q.push({"x": 2}, 1.0)
    assert q.pop_due(1.0) == [{"x": 1}, {"x": 2}]
