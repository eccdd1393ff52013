"""The tree stage of a backup: seal directories bottom-up, without waiting for the workers.

``tree_builder.TreeBuilder`` knows how a directory becomes a tree once every child is final;
this module decides *when* to ask it. Sealing resolves every content future of a directory;
doing it as soon as a directory is listed made the main thread wait for the blob workers at each
directory and left them idle afterwards. So a listed directory whose newest blob is still being
saved is queued here (oldest first) and sealed when that blob is done, or at the end.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future

from .tree_builder import PendingDir, PendingFile, TreeBuilder


class TreeSaver:
    """The session's ``TreeBuilder`` plus the directories waiting for their blobs."""

    def __init__(self, builder: TreeBuilder) -> None:
        self.builder = builder
        # Listed directories whose tree waits for its files' blobs (oldest first), with the
        # last future each waits for: sealing them blocks only at the end or when it is cheap.
        self._sealing: deque[tuple[PendingDir, Future[bytes]]] = deque()

    def listed(self, d: PendingDir) -> None:
        """Every entry of ``d`` was walked: seal it now, or once its blobs are saved.

        Only a directory with no child left to settle is deferred: one still waiting for a retry
        or a subdirectory is sealed by that child's settling, never twice.
        """
        d.listed = True
        last = _last_future(d) if d.pending == 0 else None
        if last is None or last.done():
            self.builder.try_seal(d)
        else:
            self._sealing.append((d, last))

    def seal_ready(self, *, block: bool = False) -> None:
        """Seal deferred directories in order while their blobs are saved (all of them if ``block``)."""
        q = self._sealing
        while q and (block or q[0][1].done()):
            self.builder.try_seal(q.popleft()[0])


def _last_future(d: PendingDir) -> Future[bytes] | None:
    """The newest blob future among ``d``'s files (the pool runs them in order, so when it is
    done the others practically are too), or None when nothing is pending."""
    for slot in reversed(d.slots):
        if isinstance(slot, PendingFile):
            for c in reversed(slot.chunks):
                if isinstance(c, Future):
                    return c
    return None
