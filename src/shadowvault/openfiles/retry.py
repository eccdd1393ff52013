"""Retry policy (validated bounds) and a non-blocking queue of files waiting for their next attempt.

The queue never sleeps and owns no thread: the engine asks it which items are due and
when the next one will be, so other files go on while a file waits (DESIGN "Retries").
"""

from __future__ import annotations

import heapq
import itertools
import math
from dataclasses import dataclass, field
from typing import Generic, TypeVar

MAX_RETRY_TIMES = 10
MAX_RETRY_INTERVAL = 999.0

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to wait before a failed (or, with ``on_change``, suspect) read is retried.

    ``times`` is the number of *re*-tries (0–10), so a file gets at most ``times + 1``
    attempts; ``interval`` is the wait in seconds (0–999). Out-of-range values raise
    ``ValueError`` whose message names the allowed range; the caller turns it into a
    usage or configuration error with file and line.
    """

    times: int = 0
    interval: float = 0.0
    on_change: bool = False

    def __post_init__(self) -> None:
        validate_retry_times(self.times)
        validate_retry_interval(self.interval)
        if not isinstance(self.on_change, bool):
            raise ValueError(f"retry_on_change must be true or false, got {self.on_change!r}")

    @property
    def max_attempts(self) -> int:
        """Attempts a file gets in total."""
        return self.times + 1


def validate_retry_times(value: object) -> int:
    """Return ``value`` if it is an integer from 0 to 10, else raise ``ValueError``."""
    # bool is an int subclass; "retry_times = true" is a config mistake, not 1
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_RETRY_TIMES:
        raise ValueError(f"retry_times must be an integer from 0 to {MAX_RETRY_TIMES}, got {value!r}")
    return value


def validate_retry_interval(value: object) -> float:
    """Return ``value`` as float if it is a number of seconds from 0 to 999, else raise ``ValueError``."""
    ok = (
        not isinstance(value, bool)
        and isinstance(value, int | float)
        and math.isfinite(value)
        and 0 <= value <= MAX_RETRY_INTERVAL
    )
    if not ok:
        raise ValueError(
            f"retry_interval must be a number of seconds from 0 to {MAX_RETRY_INTERVAL:g}, got {value!r}"
        )
    assert isinstance(value, int | float)
    return float(value)


@dataclass(order=True)
class _Entry(Generic[T]):
    due: float
    seq: int
    item: T = field(compare=False)


class RetryQueue(Generic[T]):
    """Items waiting until a due time (any monotonic clock the caller chooses).

    Items due at the same time come out in the order they were pushed.
    """

    def __init__(self) -> None:
        self._heap: list[_Entry[T]] = []
        self._seq = itertools.count()

    def push(self, item: T, due: float) -> None:
        """Schedule ``item`` to become due at time ``due``."""
        heapq.heappush(self._heap, _Entry(due, next(self._seq), item))

    def pop_due(self, now: float) -> list[T]:
        """Remove and return every item whose due time is ``<= now``, earliest first."""
        out: list[T] = []
        while self._heap and self._heap[0].due <= now:
            out.append(heapq.heappop(self._heap).item)
        return out

    def next_due(self) -> float | None:
        """The earliest due time, or ``None`` when the queue is empty."""
        return self._heap[0].due if self._heap else None

    def __len__(self) -> int:
        return len(self._heap)
