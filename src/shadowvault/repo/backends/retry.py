"""``RetryBackend``: a wrapper that retries transient backend failures with backoff.

Cross-cutting behaviour as a decorator (restic's ``backend/retry``): the wrapped
backend stays simple, and every operation gets the same policy. Errors the
inner backend calls permanent (missing file, existing file, permission) are
raised at once; others are retried up to ``attempts`` times, waiting
``initial_delay * 2**n`` seconds (capped by ``max_delay``) and telling the
``report`` callback about each failure.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import TypeVar

from shadowvault.repo.backends.base import Backend, FileType, is_remote, upload_connections
from shadowvault.repo.backends.mem import MemBackend

T = TypeVar("T")

ReportFn = Callable[[str, BaseException, float], None]
"""Called as ``report(operation, error, delay_before_next_try)``."""


class RetryBackend:
    """Wraps a backend; same interface."""

    def __init__(
        self,
        inner: Backend,
        *,
        attempts: int = 5,
        initial_delay: float = 0.5,
        max_delay: float = 30.0,
        report: ReportFn | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        self.inner = inner
        self._attempts = attempts
        self._initial = initial_delay
        self._max = max_delay
        self._report = report
        self._sleep = sleep
        self.retries = 0
        """Failed tries that were retried so far (each was also given to ``report``)."""

    @property
    def remote(self) -> bool:
        """Whether the inner backend is behind a network."""
        return is_remote(self.inner)

    @property
    def connections(self) -> int:
        """The inner backend's preferred number of parallel uploads."""
        return upload_connections(self.inner)

    def _retry(self, what: str, op: Callable[[], T]) -> T:
        delay = self._initial
        for attempt in range(1, self._attempts + 1):
            try:
                return op()
            except Exception as exc:
                if attempt == self._attempts or self.inner.is_permanent_error(exc):
                    raise
                self.retries += 1
                if self._report is not None:
                    self._report(what, exc, delay)
                self._sleep(delay)
                delay = min(delay * 2, self._max)
        raise AssertionError("unreachable: the loop returns or raises")

    def location(self) -> str:
        """The inner backend's location."""
        return self.inner.location()

    def create(self) -> None:
        """Create the layout, retrying."""
        self._retry("create", self.inner.create)

    def save(self, ft: FileType, name: str, data: bytes | bytearray | memoryview) -> None:
        """Save, retrying transient failures (an atomic save leaves nothing half-written)."""
        self._retry(f"save {ft.value}/{name}", lambda: self.inner.save(ft, name, data))

    def load(self, ft: FileType, name: str, offset: int = 0, length: int | None = None) -> bytes:
        """Load, retrying."""
        return self._retry(f"load {ft.value}/{name}", lambda: self.inner.load(ft, name, offset, length))

    def stat(self, ft: FileType, name: str) -> int:
        """Stat, retrying."""
        return self._retry(f"stat {ft.value}/{name}", lambda: self.inner.stat(ft, name))

    def list(self, ft: FileType) -> Iterator[tuple[str, int]]:
        """List (materialised, so a failure midway is retried from the start)."""
        return iter(self._retry(f"list {ft.value}", lambda: list(self.inner.list(ft))))

    def remove(self, ft: FileType, name: str) -> None:
        """Remove, retrying."""
        self._retry(f"remove {ft.value}/{name}", lambda: self.inner.remove(ft, name))

    def is_permanent_error(self, exc: BaseException) -> bool:
        """Delegates to the inner backend."""
        return self.inner.is_permanent_error(exc)

    def close(self) -> None:
        """Close the inner backend."""
        self.inner.close()


_: Backend = RetryBackend(MemBackend())
