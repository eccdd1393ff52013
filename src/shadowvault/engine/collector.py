"""Python's cyclic garbage collector paused for a backup's or restore's walk.

Measured on a first backup of 200,000 small files (issue 10, bench/README.md): the automatic
collector ran 4,800 times and took 6 s of the walking thread (3.5 s in 25 full collections, each
scanning the whole index and every pending directory), all of it holding the GIL, and the forked
reader processes paid the same again while touching every inherited page. The walk's objects (nodes,
outcomes, index entries, plans) hold no reference cycles: reference counting frees them.

So the automatic collector is off while the session runs and what exists at its start (modules,
the loaded index) is frozen out of every later collection (``gc.freeze``; forked readers inherit
that). A cycle made by something unusual (an exception kept with its traceback, say) is still
found: every ``every`` walked entries a collection looks at what was made since the last one and
freezes what survived, so each object is examined about once and a long run cannot pile garbage
up. Only a cycle that was alive at such a look and dies later waits for the end of the session,
when everything is unfrozen and the collector resumes.
"""

from __future__ import annotations

import gc
import threading
from types import TracebackType

_EVERY = 100_000  # walked entries between collections

# Sessions may overlap in one process (two threads of an API caller): the first to start pauses
# the collector and the last to end resumes it as it was before the first, never in between.
_lock = threading.Lock()
_active = 0
_was_enabled = False


class CollectorPause:
    """Context manager: the automatic collector off, with a collection every ``every`` entries."""

    def __init__(self, every: int = _EVERY) -> None:
        self._every = every
        self._since = 0

    def __enter__(self) -> CollectorPause:
        global _active, _was_enabled
        with _lock:
            if not _active:
                _was_enabled = gc.isenabled()
                gc.disable()
                gc.freeze()
            _active += 1
        return self

    def tick(self, entries: int) -> None:
        """``entries`` more were walked; collect what was made since the last look when due."""
        self._since += entries
        if self._since >= self._every:
            self._since = 0
            gc.collect()
            gc.freeze()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        global _active
        with _lock:
            _active -= 1
            if not _active:
                gc.unfreeze()
                if _was_enabled:
                    gc.enable()
