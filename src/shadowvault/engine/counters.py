"""The one place a backup session counts: files per class, bytes read, blobs added, outcomes.

Every final file (read, reused, failed before a read, a database dump) is recorded here, and
from here come the progress events, the ``SessionSummary`` event, the summary stored in the
snapshot's ``shadowvault`` extra key and the ``Counts`` of the ``BackupResult``. The blob
workers add to the "added" totals from their threads, under a lock (``+=`` is not atomic
across threads).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from .events import Event, EventSink, FileDone, FilesUnchanged, Progress, SessionSummary, SubtreeUnchanged
from .outcomes import FileRecord, Outcome
from .summary import Counts, exit_code

_PROGRESS_EVERY = 0.25
_UNCHANGED_BATCH = 1000
"""Unchanged files reported in one ``FilesUnchanged`` event at most."""


class SessionCounters:
    """Running totals of one backup session and the events and summaries made from them."""

    def __init__(self, sink: EventSink) -> None:
        self._sink = sink
        self.counts = Counts()
        self._unchanged_paths: list[bytes] = []
        self._unchanged_sizes: list[int] = []
        self.outcomes: list[FileRecord] = []  # every non-ok outcome (and notable ok ones)
        self._added = [0, 0]  # data blobs and bytes added, by the worker threads
        self._added_lock = threading.Lock()
        self._last_progress = 0.0

    def sink(self, event: Event) -> None:
        """The session's event sink: every event goes out through here, after the unchanged files
        walked before it (so the order of events is the walk's)."""
        if self._unchanged_paths:
            self._flush_unchanged()
        self._sink(event)

    # ----- recording ----------------------------------------------------------------------------

    def blob_added(self, size: int) -> None:
        """A worker thread stored a new data blob of ``size`` bytes."""
        self.blobs_added(1, size)

    def blobs_added(self, count: int, size: int) -> None:
        """A worker thread stored ``count`` new data blobs of ``size`` bytes in all."""
        with self._added_lock:
            self._added[0] += count
            self._added[1] += size

    def unchanged(self, path: bytes, size: int) -> None:
        """A file whose content was taken from the parent snapshot (``path`` as walked).

        Counted now, reported with its neighbours in one ``FilesUnchanged`` event (see there).
        """
        c = self.counts
        c.unchanged += 1
        c.ok += 1
        paths = self._unchanged_paths
        paths.append(path)
        self._unchanged_sizes.append(size)
        if len(paths) >= _UNCHANGED_BATCH:
            self._flush_unchanged()

    def unchanged_tree(self, path: bytes, files: int, size: int) -> None:
        """A directory whose ``files`` files (``size`` bytes) were all taken from the parent
        snapshot without being walked (``engine.prescan``): counted and reported at once."""
        c = self.counts
        c.unchanged += files
        c.ok += files
        self.sink(SubtreeUnchanged(path, files, size))

    def flush(self) -> None:
        """Report the unchanged files not reported yet (the end of a session that failed)."""
        if self._unchanged_paths:
            self._flush_unchanged()

    def _flush_unchanged(self) -> None:
        event = FilesUnchanged(self._unchanged_paths, self._unchanged_sizes)
        self._unchanged_paths, self._unchanged_sizes = [], []
        self._sink(event)

    def read(self, path: str, size: int, outcome: Outcome, *, keep: bool, in_parent: bool = False) -> None:
        """A file that was read reached ``outcome`` (``keep``: listed in the snapshot)."""
        self.counts.add_class(outcome.classification.value)
        self.counts.files_read += 1
        self.counts.bytes_read += size
        if keep:
            self.outcomes.append(FileRecord(path, outcome))
        self.sink(FileDone(path, size, outcome, reused=False, in_parent=in_parent))

    def failed_early(self, path: str, reason: str, message: str) -> None:
        """A file or directory that failed before any read (metadata, listing, a stopped retry)."""
        outcome = Outcome.failed_early(reason, message)
        self.counts.add_class(outcome.classification.value)
        self.outcomes.append(FileRecord(path, outcome))
        self.sink(FileDone(path, 0, outcome, reused=False))

    # ----- reporting ----------------------------------------------------------------------------

    def maybe_progress(self) -> None:
        """A progress event, at most every quarter second."""
        now = time.monotonic()
        if now - self._last_progress >= _PROGRESS_EVERY:
            self._last_progress = now
            c = self.counts
            self.sink(Progress(c.ok + c.suspect + c.failed, c.bytes_read, 0, ""))

    def finish(self, snapshot_id: str, *, packs: int, duration: float, partial: bool) -> int:
        """Emit the summary event; fold the added totals into ``counts``; return the exit code."""
        code = exit_code(self.counts, snapshot_written=True)
        c = self.counts
        self.sink(
            SessionSummary(
                snapshot_id=snapshot_id,
                files_ok=c.ok,
                files_suspect=c.suspect,
                files_failed=c.failed,
                files_unchanged=c.unchanged,
                files_read=c.files_read,
                bytes_read=c.bytes_read,
                data_blobs_added=self._added[0],
                bytes_added=self._added[1],
                data_packs_written=packs,
                duration=duration,
                exit_code=code,
                partial=partial,
            )
        )
        c.data_blobs_added, c.bytes_added = self._added
        return code

    def snapshot_extra(self, *, partial: bool, set_name: str | None, strategy: str) -> dict[str, Any]:
        """The snapshot's ``shadowvault`` extra key (restic keeps unknown keys)."""
        return {
            "version": 1,
            "summary": {"ok": self.counts.ok, "suspect": self.counts.suspect, "failed": self.counts.failed},
            "partial": partial,
            "set": set_name,
            "strategy": strategy,
            "outcomes": [r.to_json() for r in self.outcomes],
        }
