"""The blob stage of a backup: chunk a file's bytes, save the chunks in worker threads.

Owns the FastCDC chunker, the thread pool that calls ``save_blob`` (hash, dedup, compress,
encrypt, pack) and the bound on blobs in flight, and the index checkpoints taken while blobs
are submitted. Readers hand it a file-like object (``readinto``); it returns one ``BlobRef`` per
chunk: a future resolved by the tree stage when the directory is sealed, or, for a small blob,
its id itself. Files under ``MIN_CHUNK`` are one blob and skip the chunker (read straight into a
reusable buffer).

Small blobs (up to ``SMALL_BLOB``, i.e. most files of a tree of small files) are hashed by the
reading thread (SHA-256 of a few KiB costs less than the future it replaces) and saved in
batches of up to ``_BATCH_BYTES`` / ``_BATCH_BLOBS`` by one worker task each: a future, a queue
item and a worker wake-up per file were a large part of a small file's cost (about 38 futex
calls per file, mostly those hand-offs). A batch is handed to the workers when full and at
``wait_inflight``; the ids it holds are final at once, so their directories seal without
waiting, and the snapshot is written only after ``wait_inflight(0)`` and the repository's flush.

Several readers (``--read-concurrency``) may chunk and submit at once: the in-flight bookkeeping
is under a lock, each thread reads small files into a buffer of its own, and progress events are
sent from the main thread only (sinks are not thread-safe).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from pyfastcdc import FastCDC

from shadowvault.repo import BlobType, hash_bytes

from .counters import SessionCounters
from .ports import BackupRepo

MIN_CHUNK = 512 * 1024
AVG_CHUNK = 1024 * 1024
MAX_CHUNK = 8 * 1024 * 1024
# Blobs queued for the workers, bounded in bytes (memory: ~16 large chunks) and in number. A
# count alone starved the workers on small files (16 blobs of a few KiB drain in no time while
# the main thread waits on the disk for the next file).
_IN_FLIGHT_BYTES = 16 * 1024 * 1024
_IN_FLIGHT_BLOBS = 512
_CHECKPOINT_PACKS = 8
SMALL_BLOB = 64 * 1024
_BATCH_BYTES = 256 * 1024
_BATCH_BLOBS = 64

# A chunk of a file as the tree stage gets it: the blob id, or a future of it.
BlobRef = Future[bytes] | bytes
_CHECKPOINT_SECONDS = 120.0


class BlobStage:
    """Chunks go in, blob-id futures come out; at most ``_IN_FLIGHT_BYTES`` are waiting."""

    def __init__(self, repo: BackupRepo, pool: ThreadPoolExecutor, counters: SessionCounters) -> None:
        self.repo = repo
        self.pool = pool
        self.counters = counters
        self.chunker = FastCDC(AVG_CHUNK, min_size=MIN_CHUNK, max_size=MAX_CHUNK)
        self._local = threading.local()  # .buf: the small-file buffer of each reading thread
        self._lock = threading.Lock()
        self._main = threading.get_ident()
        self._inflight: deque[tuple[Future[bytes], int]] = deque()
        self._inflight_bytes = 0
        self._batch: list[tuple[bytes, bytes]] = []  # small blobs not handed to a worker yet
        self._batch_bytes = 0
        self._last_checkpoint = time.monotonic()

    # ----- reading a file into blobs ------------------------------------------------------------

    def chunk(
        self,
        att: Any,
        chunks: list[BlobRef],
        expected: int,
        probe: Callable[[memoryview], bool] | None = None,
    ) -> int | None:
        """Read ``att`` (``readinto``) into blobs; returns the number of bytes read.

        ``probe`` sees the first block before anything is saved (the SQLite header check uses
        bytes read anyway); when it returns True the read stops there and None is returned.
        """
        if expected < MIN_CHUNK or probe is not None:
            # One chunk at most: skip the chunker, read straight into a reusable buffer.
            buf = getattr(self._local, "buf", None)
            if buf is None:
                buf = self._local.buf = bytearray(MIN_CHUNK)
            view = memoryview(buf)
            n = 0
            while n < len(view):
                got = att.readinto(view[n:])
                if not got:
                    break
                n += got
            if probe is not None and probe(view[:n]):
                return None
            if n == len(view):  # the file grew past the small-file limit while we read it
                return self._chunk_stream(att, chunks, bytes(view[:n]))  # its total includes the head
            if n:
                data = bytes(view[:n])
                chunks.append(self._submit_small(data) if n <= SMALL_BLOB else self.submit(data))
            return n
        return self._chunk_stream(att, chunks, b"")

    def _chunk_stream(self, att: Any, chunks: list[BlobRef], head: bytes) -> int:
        total = 0
        reader = att if not head else _Prefixed(head, att)
        for chunk in self.chunker.cut_stream(reader):
            chunks.append(self.submit(bytes(chunk.data)))
            total += chunk.length
            if threading.get_ident() == self._main:
                self.counters.maybe_progress()
        return total

    # ----- saving -------------------------------------------------------------------------------

    def submit(self, data: bytes) -> Future[bytes]:
        """Queue one blob for the workers (blocking while the in-flight budget is used up)."""
        with self._lock:
            self._wait_inflight(_IN_FLIGHT_BYTES - len(data))
            self._maybe_checkpoint(idle=False)
            fut = self.pool.submit(self._save, data)
            self._inflight.append((fut, len(data)))
            self._inflight_bytes += len(data)
            return fut

    def _save(self, data: bytes) -> bytes:
        blob_id, added = self.repo.save_blob(BlobType.DATA, data)
        if added:
            self.counters.blob_added(len(data))
        return blob_id

    def _submit_small(self, data: bytes) -> bytes:
        """Queue one small blob in the current batch; returns its id (see the module docstring)."""
        blob_id = hash_bytes(data)
        with self._lock:
            self._batch.append((data, blob_id))
            self._batch_bytes += len(data)
            if self._batch_bytes >= _BATCH_BYTES or len(self._batch) >= _BATCH_BLOBS:
                self._hand_over_batch()
        return blob_id

    def _hand_over_batch(self) -> None:
        """Give the current batch to a worker, within the in-flight budget (lock held)."""
        batch, size = self._batch, self._batch_bytes
        if not batch:
            return
        self._batch, self._batch_bytes = [], 0
        self._wait_inflight(_IN_FLIGHT_BYTES - size)
        self._maybe_checkpoint(idle=False)
        fut = self.pool.submit(self._save_batch, batch)
        self._inflight.append((fut, size))
        self._inflight_bytes += size

    def _save_batch(self, batch: list[tuple[bytes, bytes]]) -> bytes:
        added_bytes = added = 0
        for data, blob_id in batch:
            if self.repo.save_blob(BlobType.DATA, data, blob_id)[1]:
                added += 1
                added_bytes += len(data)
        if added:
            self.counters.blobs_added(added, added_bytes)
        return b""

    def wait_inflight(self, max_bytes: int) -> None:
        """Collect finished blobs (raising a worker's error); block while over the budget.

        The current batch of small blobs is handed to the workers first, so ``wait_inflight(0)``
        returns once every blob submitted so far is saved."""
        with self._lock:
            self._hand_over_batch()
            self._wait_inflight(max_bytes)

    def _wait_inflight(self, max_bytes: int) -> None:
        q = self._inflight
        while q and (self._inflight_bytes > max_bytes or len(q) >= _IN_FLIGHT_BLOBS or q[0][0].done()):
            fut, size = q.popleft()
            self._inflight_bytes -= size
            fut.result()

    def maybe_checkpoint(self, *, idle: bool = False) -> None:
        """Index uploaded packs every few packs or minutes (or whenever the session is only
        waiting for retries), so a killed session's data is reused by the next one."""
        with self._lock:
            self._maybe_checkpoint(idle=idle)

    def _maybe_checkpoint(self, *, idle: bool) -> None:
        now = time.monotonic()
        pending = self.repo.unindexed_packs()
        due = idle or pending >= _CHECKPOINT_PACKS or now - self._last_checkpoint >= _CHECKPOINT_SECONDS
        if pending and due:
            self.repo.checkpoint()
            self._last_checkpoint = now


class _Prefixed:
    """A reader that first returns ``head`` and then continues from ``rest``."""

    def __init__(self, head: bytes, rest: Any) -> None:
        self._head = memoryview(head)
        self._rest = rest

    def readinto(self, b: memoryview) -> int:
        if self._head:
            n = min(len(b), len(self._head))
            b[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        return int(self._rest.readinto(b))
