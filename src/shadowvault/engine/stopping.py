"""Why and whether a backup session stops early (``stop_at``, the daemon's SIGTERM, ``stop_on_errors``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class StopRequest:
    """Why a session should stop early and keep what it saved (``stop_at`` or the daemon's SIGTERM)."""

    kind: Literal["deadline", "interrupted"]
    message: str


class StopState:
    """Shared by the walk and the file stage: once stopping, the walk ends and the snapshot is partial."""

    def __init__(
        self, stop_when: Callable[[], StopRequest | None] | None, warn: Callable[[str], None]
    ) -> None:
        self._stop_when = stop_when
        self._warn = warn
        self.stopping = False  # the walk ends; the snapshot is tagged "partial"
        self.request: StopRequest | None = None  # set when stop_when asked for it

    def _ask(self) -> bool:
        req = self._stop_when() if self._stop_when is not None else None
        if req is not None:
            self.stopping, self.request = True, req
            self._warn(req.message)
        return req is not None

    def walk_should_stop(self) -> bool:
        """Asked before every entry: stop after too many failures or on request."""
        return self.stopping or (self._stop_when is not None and self._ask())

    def requested(self) -> bool:
        """Asked while waiting for retries: only a request (not stop_on_errors) gives them up."""
        return self.request is not None or (self._stop_when is not None and self._ask())

    def too_many_failures(self, failed: int) -> None:
        """``stop_on_errors`` was reached."""
        self.stopping = True
        self._warn(f"stopping after {failed} failed files (stop_on_errors)")
