"""The file stage of a backup: one regular file from its metadata to its final outcome.

Owns, per file: reuse of the parent snapshot's content when the file is unchanged, the read
attempt through the open-file engine (``openfiles.OpenFiles.attempt``: open, guard, read) into
the blob stage, the decision between a retry (the file waits in the ``RetryQueue``, keeping a
slot open in its directory) and a final ``FileOutcome``, and settling that outcome into the
tree stage and the counters. SQLite database groups (``engine.dbcapture``) plug in here: they
are asked before and while a live file is read and read and settle through this class.

``read_concurrency`` N > 1 (restic's ``--read-concurrency``): live plain files are opened, guarded
and read by N reader threads while the walk goes on; only the read runs there. Outcomes are
decided and settled in the walking thread, oldest first (so events keep the walk's order), at
most N reads are in flight, and warnings from readers are passed on from the walking thread
(sinks such as the activity log are not thread-safe). Files read from a snapshot view and
database units are read in the walking thread as before, after the reads in flight are settled
(which also covers a companion whose database a reader may have just recognised).
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shadowvault.errors import SnapshotError
from shadowvault.fs import FileMeta, read_meta
from shadowvault.openfiles import (
    Classification,
    FileOutcome,
    OpenFiles,
    Reason,
    Retry,
    RetryQueue,
    Strategy,
    decide,
)
from shadowvault.repo import BlobType, Node
from shadowvault.snapshots import SnapshotMode, SnapshotView

from .blobstage import BlobRef, BlobStage
from .counters import SessionCounters
from .dbcapture import DatabaseCapture
from .dbgroups import COMPANION_SUFFIXES
from .events import EventSink, FileRetryScheduled, Warning_
from .nodes import node_outcome, unchanged
from .outcomes import Outcome
from .ports import BackupRepo
from .procread import SMALL_FILE, ReadHandle, ReadProcesses
from .stopping import StopState
from .tree_builder import PendingDir, PendingFile, TreeBuilder

if TYPE_CHECKING:
    from .backup import BackupOptions


@dataclass
class _Read:
    """What a reader thread hands back: the attempt and the blobs it submitted."""

    attempt: Any
    chunks: list[BlobRef]
    size: int | None  # None: the probe stopped the read (a SQLite database in use)
    take_over: bool  # a refused read of a database: saved as a unit instead


@dataclass
class WaitingFile:
    """A file with a reserved slot in its directory, read now or waiting in the retry queue."""

    dir: PendingDir
    slot: int
    orig: bytes
    read_path: bytes
    view: SnapshotView | None
    attempts: list[Any]
    in_parent: bool = False  # the parent snapshot had this path: "modified", not "new" (-v)
    kind: str = "file"  # "sqlite": copied through SQLite; "group": a database read with its companions
    members: list[WaitingFile] = field(default_factory=list)  # a group's companions
    plain_only: bool = False  # starts with the SQLite header, but SQLite cannot read it


class FileSaver:
    """Reads, retries and settles the session's regular files (see the module docstring)."""

    def __init__(
        self,
        repo: BackupRepo,
        opt: BackupOptions,
        sink: EventSink,
        *,
        builder: TreeBuilder,
        blobs: BlobStage,
        counters: SessionCounters,
        stop: StopState,
        read_processes: int = 0,
    ) -> None:
        self.repo = repo
        self.opt = opt
        self.sink = sink
        self.builder = builder
        self.blobs = blobs
        self.counters = counters
        self.stop = stop
        self._main = threading.get_ident()
        self._warnings: deque[str] = deque()  # from reader threads, sent by the walking thread
        # Forked first: no thread of this session exists yet (engine.procread).
        self._procs = (
            ReadProcesses(
                read_processes,
                strategy=opt.strategy,
                retry=opt.retry,
                encode=repo.encode_blob,
                save_encoded=repo.save_encoded_blob,
                on_added=counters.blob_added,
            )
            if read_processes > 0
            else None
        )
        # In the main thread (it installs the lease-break handler); its warnings pass through ``warn``.
        self.of = OpenFiles(on_warning=self.warn)
        self.queue: RetryQueue[WaitingFile] = RetryQueue()
        self.dbs = DatabaseCapture(self)
        n = max(1, opt.read_concurrency)
        self._limit = max(n, self._procs.capacity if self._procs is not None else 0)
        self._readers = ThreadPoolExecutor(n, thread_name_prefix="read") if n > 1 else None
        self._reading: deque[tuple[WaitingFile, FileMeta, Strategy, Future[_Read] | ReadHandle]] = deque()
        self._last_outcome: FileOutcome | None = None  # settle()'s last conversion
        self._last_final = Outcome.reused()

    def close(self) -> None:
        """End of session: the reader threads and processes, the database stage's temporary files."""
        try:
            if self._readers is not None:
                self._readers.shutdown(wait=True, cancel_futures=True)
            if self._procs is not None:
                self._procs.close()
            self.dbs.close()
        finally:
            self.of.close()

    # ----- the walk hands over a file -----------------------------------------------------------

    def backup_file(
        self,
        d: PendingDir,
        orig: bytes,
        read_path: bytes,
        meta: FileMeta,
        parent_node: Node | None,
        view: SnapshotView | None,
    ) -> None:
        """Save a regular file of ``d``: its parent's content when unchanged, else read it."""
        if (
            parent_node is not None
            and not self.opt.force
            and view is None
            and unchanged(parent_node, meta)
            and node_outcome(parent_node) is None
            and self.dbs.may_reuse(orig)
            and all(self.repo.has_blob(BlobType.DATA, b) for b in parent_node.content or [])
        ):
            d.add(PendingFile(meta, meta.size, list(parent_node.content or []), None))
            self.counters.unchanged(orig, meta.size)
            return
        if self._reading and (
            view is not None or orig.endswith(COMPANION_SUFFIXES) or self.dbs.may_take_over(orig)
        ):
            # Read here, not by a reader: settle the reads in flight first (the walk's order), and
            # a companion's database may be one of them (see the module docstring).
            self.collect_reads(wait_all=True)
        waiting = WaitingFile(d, d.reserve(), orig, read_path, view, [], parent_node is not None)
        if view is None and self.dbs.before_read(waiting, meta):
            return
        self._attempt(waiting, meta)

    # Entry points for engine/dbcapture.py (database groups), which reads and settles through us.

    def new_waiting(self, d: PendingDir, orig: bytes, read_path: bytes) -> WaitingFile:
        """A live file of directory ``d`` with a slot of its own (a database group's member)."""
        return WaitingFile(d, d.reserve(), orig, read_path, None, [])

    def attempt_file(self, w: WaitingFile, meta: FileMeta) -> None:
        """Read ``w`` as a plain file under the set's strategy."""
        self._attempt(w, meta)

    def chunk_into(self, reader: Any, chunks: list[BlobRef], expected: int) -> int:
        """Read ``reader`` (``readinto``) to its end into blobs; returns the bytes read."""
        size = self.blobs.chunk(reader, chunks, expected)
        assert size is not None  # without a probe the read never stops early
        return size

    def warn(self, message: str) -> None:
        """A session warning (log and activity log); from a reader thread it waits for the walker."""
        if threading.get_ident() != self._main:
            self._warnings.append(message)
            return
        self.sink(Warning_(message))

    # ----- one attempt --------------------------------------------------------------------------

    def _attempt(self, w: WaitingFile, meta: FileMeta) -> None:
        """One read attempt; then settle the file or put it back in the retry queue."""
        if w.kind == "file" and w.view is None:
            pending = self._read_elsewhere(w, meta)
            if pending is not None:
                self._reading.append((w, meta, self.opt.strategy, pending))
                self.collect_reads(wait_all=False)
                return
        if self._procs is not None and self._reading:
            self.collect_reads(wait_all=True)  # settled in walk order: the reads in flight first
        self._attempt_here(w, meta)

    def _read_elsewhere(self, w: WaitingFile, meta: FileMeta) -> Future[_Read] | ReadHandle | None:
        """A live file's attempt handed to a reader process (a small file's first attempt) or a
        reader thread; None when it is made in the walking thread."""
        if self._procs is not None and not w.attempts and not w.plain_only and meta.size <= SMALL_FILE:
            handle = self._procs.submit(w.read_path)
            if handle is not None:
                return handle
        if self._readers is not None:
            return self._readers.submit(self._read_live, w, meta, self.opt.strategy)
        return None

    def _attempt_here(self, w: WaitingFile, meta: FileMeta) -> None:
        """One attempt in the walking thread (snapshot views, databases, retries, or no readers)."""
        if w.kind != "file":
            self.dbs.attempt(w, meta)
            return
        take_over = False
        with ExitStack() as stack:
            path = self._path_to_read(w, stack)
            if path is None:
                self.builder.settle(w.dir, w.slot, None)
                return
            strategy = Strategy.ALLOW_WRITE if w.view is not None else self.opt.strategy
            live = w.view is None and not w.plain_only
            chunks: list[BlobRef] = []
            size: int | None = 0
            with self.of.attempt(path, strategy, number=len(w.attempts) + 1) as att:
                if att.refused is None:
                    probe = (lambda head: self.dbs.probe(w, att, head)) if live else None
                    size = self.blobs.chunk(att, chunks, meta.size, probe)
                elif live:
                    take_over = self.dbs.refused(w, att)
            attempt = att.result()
        self._decide(w, meta, strategy, live, _Read(attempt, chunks, size, take_over))

    def _read_live(self, w: WaitingFile, meta: FileMeta, strategy: Strategy) -> _Read:
        """In a reader thread: one attempt at a live file (the same steps as ``_attempt``'s)."""
        chunks: list[BlobRef] = []
        size: int | None = 0
        take_over = False
        live = not w.plain_only
        with self.of.attempt(w.read_path, strategy, number=len(w.attempts) + 1) as att:
            if att.refused is None:
                probe = (lambda head: self.dbs.probe(w, att, head)) if live else None
                size = self.blobs.chunk(att, chunks, meta.size, probe)
            elif live:
                take_over = self.dbs.refused(w, att)
        return _Read(att.result(), chunks, size, take_over)

    def collect_reads(self, *, wait_all: bool) -> None:
        """Settle finished reads, oldest first; wait while N are in flight (all with ``wait_all``)."""
        q = self._reading
        while q and (wait_all or len(q) >= self._limit or q[0][3].done()):
            w, meta, strategy, fut = q.popleft()
            got = fut.result()
            self._flush_warnings()
            if self.stop.stopping:
                # The walk stopped (stop_on_errors, stop_at, a signal) after this file was handed to
                # a reader: left out like the entries the walk did not reach, not read or failed.
                self.builder.settle(w.dir, w.slot, None)
                continue
            if isinstance(got, _Read):
                self._decide(w, meta, strategy, not w.plain_only, got)
            elif got is None:
                self._attempt_here(w, meta)  # not clean in a reader process: read it here, as always
            else:
                chunks: list[BlobRef] = [got.blob_id] if got.blob_id is not None else []
                self._decide(w, meta, strategy, not w.plain_only, _Read(got.attempt, chunks, got.size, False))
        self._flush_warnings()

    def _flush_warnings(self) -> None:
        while self._warnings:
            self.sink(Warning_(self._warnings.popleft()))

    def _decide(self, w: WaitingFile, meta: FileMeta, strategy: Strategy, live: bool, read: _Read) -> None:
        """After a read: a database taken over, a retry later, or the file's final outcome."""
        size, attempt, chunks = read.size, read.attempt, read.chunks
        if size is None or read.take_over or (live and self.dbs.after_read(w)):
            self.dbs.take_over(w, meta)  # a SQLite database in use: saved as one unit
            return
        w.attempts.append(attempt)
        step = decide(w.attempts, strategy, self.opt.retry)
        if isinstance(step, Retry):
            self.queue.push(w, time.monotonic() + step.after)
            self.sink(FileRetryScheduled(os.fsdecode(w.orig), len(w.attempts), step.after, step.reason.value))
            return
        self.settle(w, meta, step, chunks, size)

    def _path_to_read(self, w: WaitingFile, stack: ExitStack) -> bytes | None:
        """Where to read the file: inside its snapshot view, or live.

        A file the view cannot provide (e.g. a reflink clone that fails) is read live under
        ``auto``; under ``required`` it fails, since a live read is what the user ruled out.
        """
        if w.view is None:
            return w.read_path
        try:
            return os.fsencode(str(stack.enter_context(w.view.open_file(Path(os.fsdecode(w.orig))))))
        except SnapshotError as e:
            if self.opt.snapshot_mode is SnapshotMode.REQUIRED:
                self.failed_early(w.orig, "snapshot-failed", f"could not be read from a snapshot: {e}")
                return None
            self.warn(f"{os.fsdecode(w.orig)}: {e}; reading the live file with the open-file strategy")
            w.view = None
            w.read_path = w.orig
            return w.read_path

    # ----- final outcomes -----------------------------------------------------------------------

    def settle(
        self,
        w: WaitingFile,
        meta: FileMeta | None,
        outcome: FileOutcome,
        chunks: list[BlobRef],
        size: int,
    ) -> None:
        """The final outcome of ``w`` (``meta`` None only for a failed file); also used by dbcapture."""
        if outcome.reason is Reason.VANISHED:
            self._vanished(w)
            return
        final = self._last_final
        if outcome is not self._last_outcome:
            # Clean first reads share one outcome value (openfiles.decide): converted once.
            final = self._last_final = Outcome.of_file(outcome)
            self._last_outcome = outcome
        cls = outcome.classification
        via_sqlite = final.via_sqlite
        keep = final.problem or bool(outcome.writers) or via_sqlite
        if cls is Classification.FAILED or meta is None:
            self.builder.settle(w.dir, w.slot, None)
        else:
            # A database copied through SQLite says so on its node (ls --long), which also keeps
            # the next session from taking it unchanged: its WAL may hold newer commits.
            stored = final if cls is Classification.SUSPECT or via_sqlite else None
            self.builder.settle(w.dir, w.slot, PendingFile(meta, size, chunks, stored))
        self.counters.read(os.fsdecode(w.orig), size, final, keep=keep, in_parent=w.in_parent)
        failed = self.counters.counts.failed
        if cls is Classification.FAILED and self.opt.stop_on_errors and failed >= self.opt.stop_on_errors:
            self.stop.too_many_failures(failed)

    def _vanished(self, w: WaitingFile) -> None:
        """Deleted between the directory listing and the read (temp files, journals): nothing is
        lost, so it is left out with a warning instead of counting as a failed file (as restic)."""
        self.builder.settle(w.dir, w.slot, None)
        self.warn(f"{os.fsdecode(w.orig)} was deleted before it could be read; not in this snapshot")

    def failed_early(self, orig: bytes, reason: str, message: str) -> None:
        """A file or directory that failed before any read (its slot is the caller's business)."""
        self.counters.failed_early(os.fsdecode(orig), reason, message)

    # ----- retries ------------------------------------------------------------------------------

    def poll_retries(self) -> None:
        """Attempt the files whose retry is due (asked between entries of the walk)."""
        if not self.queue:  # asked before every entry; almost always empty
            return
        for w in self.queue.pop_due(time.monotonic()):
            self._retry(w)

    def _retry(self, w: WaitingFile) -> None:
        try:
            meta = renamed(read_meta(w.read_path), os.path.basename(w.orig))
        except FileNotFoundError:
            self._vanished(w)
            return
        except OSError as e:
            self.builder.settle(w.dir, w.slot, None)
            self.failed_early(w.orig, "io-error", f"cannot read metadata: {e.strerror}")
            return
        self._attempt(w, meta)

    def drain_retries(self) -> None:
        """After the walk: wait for and attempt every retry (checkpointing the index meanwhile)."""
        self.collect_reads(wait_all=True)
        while len(self.queue):
            if self.stop.requested():
                # Waiting out retry intervals would defeat stop_at: those files are not saved.
                for w in self.queue.pop_due(float("inf")):
                    self.builder.settle(w.dir, w.slot, None)
                    self.failed_early(w.orig, "stopped", "the run stopped before this file's retry")
                return
            due = self.queue.next_due()
            if due is not None:
                delay = due - time.monotonic()
                if delay > 0:
                    self.blobs.maybe_checkpoint(idle=True)
                    time.sleep(min(delay, 0.5))
            self.poll_retries()
            self.collect_reads(wait_all=True)


def renamed(meta: FileMeta, name: bytes) -> FileMeta:
    """The walk reads metadata through snapshot paths; the node keeps the original name."""
    if meta.name == name:
        return meta
    return dataclasses.replace(meta, name=name)
