"""``RateLimitBackend``: a wrapper that holds uploads and downloads to a rate (restic's
``--limit-upload`` / ``--limit-download``, in KiB/s).

Cross-cutting behaviour as a decorator, like ``RetryBackend`` (restic's ``backend/limiter``): the
bytes of every ``save`` are taken from the upload bucket before they are written, and the bytes every
``load`` returned from the download bucket after they were read. One :class:`TokenBucket` per
direction is shared by every thread using the backend (the packer's upload threads, restore's
readers), so the limit is for the whole process, not per connection.

Hand-written rather than a library: the rate limiters on PyPI (``pyrate-limiter``, ``limits``,
``token-bucket``) count requests in time windows and refuse a request larger than the bucket, while
here one request is a whole pack (16 MiB and more) against a bucket of one second's worth of bytes;
the bucket below lets a request go into debt and makes its caller sleep the debt off, which is the
twelve lines that are needed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

from shadowvault.repo.backends.base import Backend, FileType, is_remote, upload_connections
from shadowvault.repo.backends.mem import MemBackend

KIB = 1024


class TokenBucket:
    """``rate`` bytes per second with a burst of one second's worth; safe for many threads.

    :meth:`take` reserves the bytes at once (the bucket may go negative) and sleeps until the
    reservation is covered, so concurrent callers queue up behind each other's debt and the total
    never runs ahead of the rate by more than the burst.
    """

    def __init__(
        self,
        rate: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = float(rate)
        self.burst = float(rate)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = self.burst
        self._stamp = clock()

    def take(self, n: int) -> float:
        """Account for ``n`` bytes; returns the seconds slept (0 while the burst lasts)."""
        if n <= 0:
            return 0.0
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            self._tokens -= n
            wait = -self._tokens / self.rate if self._tokens < 0 else 0.0
        if wait > 0:
            self._sleep(wait)
        return wait


def bucket_for(kib_per_second: int) -> TokenBucket | None:
    """A bucket for a limit in KiB/s (restic's unit); None for 0, which means no limit."""
    return TokenBucket(kib_per_second * KIB) if kib_per_second > 0 else None


class RateLimitBackend:
    """Wraps a backend; same interface. ``upload`` / ``download`` None: that direction is free."""

    def __init__(
        self, inner: Backend, *, upload: TokenBucket | None = None, download: TokenBucket | None = None
    ) -> None:
        self.inner = inner
        self.upload = upload
        self.download = download

    @property
    def remote(self) -> bool:
        """Whether the inner backend is behind a network."""
        return is_remote(self.inner)

    @property
    def connections(self) -> int:
        """The inner backend's preferred number of parallel uploads."""
        return upload_connections(self.inner)

    def location(self) -> str:
        """The inner backend's location."""
        return self.inner.location()

    def create(self) -> None:
        """Create the layout."""
        self.inner.create()

    def save(self, ft: FileType, name: str, data: bytes | bytearray | memoryview) -> None:
        """Wait for the upload budget of ``data``, then save it."""
        if self.upload is not None:
            self.upload.take(len(data))
        self.inner.save(ft, name, data)

    def load(self, ft: FileType, name: str, offset: int = 0, length: int | None = None) -> bytes:
        """Load, then wait until the bytes read fit the download budget."""
        data = self.inner.load(ft, name, offset, length)
        if self.download is not None:
            self.download.take(len(data))
        return data

    def stat(self, ft: FileType, name: str) -> int:
        """Stat (no payload: not limited)."""
        return self.inner.stat(ft, name)

    def list(self, ft: FileType) -> Iterator[tuple[str, int]]:
        """List (names only: not limited)."""
        return self.inner.list(ft)

    def remove(self, ft: FileType, name: str) -> None:
        """Remove (not limited)."""
        self.inner.remove(ft, name)

    def is_permanent_error(self, exc: BaseException) -> bool:
        """Delegates to the inner backend."""
        return self.inner.is_permanent_error(exc)

    def close(self) -> None:
        """Close the inner backend."""
        self.inner.close()


_: Backend = RateLimitBackend(MemBackend())
