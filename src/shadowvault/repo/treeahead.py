"""Trees read together with their neighbours, for repositories behind a network.

A restore (or ``ls``, or a backup's parent) walks a snapshot tree by tree, and each tree is a blob
of a tree pack. Locally a blob read costs a ``pread``; on SFTP, S3 or REST it costs a round trip,
and a snapshot of a few hundred directories costs a few hundred of them in a row. So on a remote
backend the first tree read from a pack brings the tree blobs around it (``WINDOW`` bytes either
side: a backup writes a directory's subtrees just before it, a walk asks for them just after),
verified like any blob, and keeps them here until asked for. At most ``LIMIT`` bytes are kept,
oldest dropped first; a tree is handed out once.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

WINDOW = 4 * 1024 * 1024
LIMIT = 64 * 1024 * 1024


class TreeAhead:
    """Decoded tree blobs read before they were asked for."""

    def __init__(self, limit: int = LIMIT) -> None:
        self._limit = limit
        self._lock = threading.Lock()
        self._trees: OrderedDict[bytes, bytes] = OrderedDict()
        self._bytes = 0
        self.hits = 0

    def take(self, tree_id: bytes) -> bytes | None:
        """The tree's JSON if it was read ahead (and forget it), else None."""
        with self._lock:
            raw = self._trees.pop(tree_id, None)
            if raw is not None:
                self._bytes -= len(raw)
                self.hits += 1
            return raw

    def keep(self, tree_id: bytes, raw: bytes) -> None:
        """Remember a tree read ahead, dropping the oldest beyond the limit."""
        with self._lock:
            if tree_id in self._trees or len(raw) > self._limit:
                return
            self._trees[tree_id] = raw
            self._bytes += len(raw)
            while self._bytes > self._limit:
                _, old = self._trees.popitem(last=False)
                self._bytes -= len(old)
