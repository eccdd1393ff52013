"""Forked reader processes: small plain files read, hashed, compressed and encrypted off the GIL.

On a tree of small files the walking thread was busy all the time (the per-file work of the
open-file engine, the read and the blob's encoding hold the GIL) while the second core idled:
threads cannot share that work. So a first backup forks ``n`` worker processes when the file
stage starts (before any blob or upload thread exists). The walking thread sends them the paths
of live regular files of up to ``SMALL_FILE`` bytes in batches; each worker makes the file's
first attempt with its own ``openfiles.OpenFiles`` session (the same open, lease, read and
after-checks as the walking thread's, with the lease-break handler installed in the worker), and
for a file whose attempt comes out clean — lease granted, final outcome ``ok``, no writer, no
SQLite header — it hashes, compresses and encrypts the content with the repository's key and
sends back the attempt's facts, the blob id and the stored bytes. The walking process adds the
stored blob to its open pack (``save_encoded_blob``: packs, index and uploads stay in one
process) and settles the file from those facts through the usual decision, in walk order.

Anything else — a refused lease, a writer, a changed file, an error, a SQLite database or
companion, a file that grew past the limit, a dead worker — comes back as "read it here": the
walking thread then makes the attempt exactly as without workers (``FileSaver``), so retries,
suspect outcomes, writers, database groups and warnings are today's, and the worker's try leaves
nothing behind. Workers write nothing to the repository: a killed session is as safe as before.
A worker ignores SIGINT (the session handles it) and exits when its connection closes, also
when the session process is killed.
"""

from __future__ import annotations

import os
import pickle
import select
import signal
import socket
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection

from shadowvault.openfiles import (
    Attempt,
    Classification,
    FileOutcome,
    LeaseState,
    OpenFiles,
    RetryPolicy,
    Strategy,
)
from shadowvault.openfiles import decide as decide_outcome

from .blobstage import SMALL_BLOB
from .forked import READY, fork_worker, handshake, reap
from .hotbackup.sqlite import has_sqlite_header

SMALL_FILE = SMALL_BLOB
_BATCH = 64  # files per request
_BATCH_BYTES = 8 << 10  # or fewer, when their paths make this many bytes
_PER_WORKER = 8  # requests in flight per worker (3 left the workers waiting for the walk)
_GIVE_UP_AFTER = 4 * _BATCH  # files answered, none clean: the workers are not used any further
_POLL_EVERY = 16  # ReadHandle.done calls per look at a worker's pipe

# What a worker sends back per file: None ("read it here"), or the attempt, size, blob id (None
# for an empty file), stored form and uncompressed length.
_Result = tuple[Attempt, int, bytes | None, bytes, int | None] | None
Encode = Callable[[memoryview], tuple[bytes, bytes, int | None]]


@dataclass(frozen=True)
class CleanRead:
    """A file a worker read clean; its blob (if any) is already in the repository's open pack."""

    attempt: Attempt
    size: int
    blob_id: bytes | None


class _Request:
    __slots__ = ("results", "size", "worker")

    def __init__(self, worker: _Worker) -> None:
        self.worker = worker
        self.results: list[CleanRead | None] | None = None
        self.size = 0  # bytes sent for it


class ReadHandle:
    """One file's place in a request; ``done``/``result`` as a future's (None: read it here)."""

    __slots__ = ("_i", "_pool", "_req")

    def __init__(self, pool: ReadProcesses, req: _Request, i: int) -> None:
        self._pool, self._req, self._i = pool, req, i

    def done(self) -> bool:
        return self._pool.poll(self._req)

    def result(self) -> CleanRead | None:
        return self._pool.wait(self._req)[self._i]


@dataclass
class _Worker:
    pid: int
    conn: Connection
    sent: deque[_Request]
    ready: select.poll  # Connection.poll builds a selector per call: too slow per file
    alive: bool = True


class ReadProcesses:
    """``n`` forked readers (see the module docstring); fork before starting any thread of the session."""

    def __init__(
        self,
        n: int,
        *,
        strategy: Strategy,
        retry: RetryPolicy,
        encode: Encode,
        save_encoded: Callable[[bytes, bytes, int | None], bool],
        on_added: Callable[[int], None],
    ) -> None:
        self._save_encoded = save_encoded
        self._on_added = on_added
        self._workers: list[_Worker] = []
        self._next = 0
        self._paths: list[bytes] = []
        self._handles: list[ReadHandle] = []
        self._open: _Request | None = None
        self._path_bytes = 0  # of _paths
        self._polls = 0
        self._unanswered_max = 0  # set from the connection's send buffer below
        self.clean = 0  # files the workers read clean (the rest were read by the walking thread)
        self.answered = 0  # files the workers answered for, clean or not

        def serve(conn: Connection) -> None:
            _serve(conn, strategy, retry, encode)

        for _ in range(n):
            pid, ours = fork_worker(serve, [w.conn for w in self._workers])
            if not self._unanswered_max:
                with socket.socket(fileno=os.dup(ours.fileno())) as sock:
                    # A quarter: the kernel charges each message's bookkeeping to the buffer too.
                    self._unanswered_max = sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) // 4
            ready = select.poll()
            ready.register(ours.fileno(), select.POLLIN)
            self._workers.append(_Worker(pid, ours, deque(), ready))
        for w in self._workers:
            self._handshake(w)

    @staticmethod
    def _handshake(worker: _Worker) -> None:
        """Wait for the worker's first encode (``forked.handshake``): a worker that does not answer
        is ended and its share read here."""
        if not handshake(worker.pid, worker.conn):
            worker.alive = False

    @property
    def capacity(self) -> int:
        """Files that may be in flight before the walk should wait for the oldest."""
        return len(self._workers) * _PER_WORKER * _BATCH

    def submit(self, path: bytes) -> ReadHandle | None:
        """Queue ``path`` for a worker; None when no worker is left (read it here)."""
        if self.answered >= _GIVE_UP_AFTER and not self.clean:
            # Nothing came out clean so far (no lease here: not the files' owner without
            # CAP_LEASE, NFS, FUSE): every file would be read twice, so read them here only.
            return None
        if self._open is None:
            worker = self._pick()
            if worker is None:
                return None
            self._open = _Request(worker)
        handle = ReadHandle(self, self._open, len(self._paths))
        self._paths.append(path)
        self._path_bytes += len(path)
        if len(self._paths) >= _BATCH or self._path_bytes >= _BATCH_BYTES:
            self._send()
        return handle

    def _pick(self) -> _Worker | None:
        """The live worker with the fewest requests in flight (round robin among equals)."""
        live = [w for w in self._workers if w.alive]
        if not live:
            return None
        self._next += 1
        return min(
            live, key=lambda w: (len(w.sent), (self._workers.index(w) - self._next) % len(self._workers))
        )

    def _send(self) -> None:
        req, paths = self._open, self._paths
        if req is None:
            return
        self._open, self._paths, self._path_bytes = None, [], 0
        worker = req.worker
        payload = pickle.dumps(paths, protocol=pickle.HIGHEST_PROTOCOL)
        # The worker may be blocked sending an answer (up to a batch of 64 KiB blobs) that only
        # this thread reads: a send that does not fit the connection's buffer would then wait
        # for the worker while the worker waits for us. So the requests not yet answered must
        # fit it (long paths deadlocked the backup before this rule). An idle worker reads at once.
        while (
            worker.alive
            and worker.sent
            and (
                len(worker.sent) >= _PER_WORKER
                or sum(r.size for r in worker.sent) + len(payload) > self._unanswered_max
            )
        ):
            self._receive(worker)
        if not worker.alive:
            req.results = [None] * len(paths)
            return
        try:
            worker.conn.send_bytes(payload)
        except OSError:
            self._lost(worker)
            req.results = [None] * len(paths)
            return
        req.size = len(payload)
        worker.sent.append(req)

    def poll(self, req: _Request) -> bool:
        """True when ``req``'s results are in (receiving what has arrived, never blocking)."""
        if req.results is not None:
            return True
        if req is self._open:
            return False
        # Asked once per walked entry while the oldest request is out; the answer comes for a
        # whole batch, so looking at the pipe every few calls is enough (a poll(2) each time was
        # ~5 % of the walking thread on small files).
        self._polls += 1
        if self._polls < _POLL_EVERY:
            return False
        self._polls = 0
        worker = req.worker
        while req.results is None and worker.alive and worker.ready.poll(0):
            self._receive(worker)
        return req.results is not None

    def wait(self, req: _Request) -> list[CleanRead | None]:
        """``req``'s results, sending it first if it is still being filled."""
        if req is self._open:
            self._send()
        while req.results is None:
            self._receive(req.worker)
        return req.results

    def _receive(self, worker: _Worker) -> None:
        """The oldest request of ``worker`` answered (its blobs go into the open pack)."""
        req = worker.sent[0]
        try:
            raw: list[_Result] = pickle.loads(worker.conn.recv_bytes())
        except (EOFError, OSError):
            self._lost(worker)
            return
        worker.sent.popleft()
        results: list[CleanRead | None] = []
        for r in raw:
            if r is None:
                results.append(None)
                continue
            attempt, size, blob_id, stored, ulen = r
            if blob_id is not None and self._save_encoded(blob_id, stored, ulen):
                self._on_added(size)
            results.append(CleanRead(attempt, size, blob_id))
            self.clean += 1
        self.answered += len(raw)
        req.results = results

    def _lost(self, worker: _Worker) -> None:
        """A worker died or its connection broke: everything it had is read here instead."""
        worker.alive = False
        for req in worker.sent:
            if req.results is None:
                # The request's length is not kept; handles index into a list long enough.
                req.results = [None] * _BATCH
        worker.sent.clear()

    def close(self) -> None:
        """End the workers (closing their connections) and reap them."""
        if self._open is not None:
            self._open.results = [None] * len(self._paths)
            self._open, self._paths, self._path_bytes = None, [], 0
        for w in self._workers:
            w.conn.close()
            w.alive = False
        reap(w.pid for w in self._workers)
        self._workers = []


# ----- in the worker ----------------------------------------------------------------------------


def _serve(conn: Connection, strategy: Strategy, retry: RetryPolicy, encode: Encode) -> None:
    """A worker's life: read requests until the connection closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the session handles Ctrl-C and closes us
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    of = OpenFiles()  # its own lease-break handler, in this process's only thread
    view = memoryview(bytearray(SMALL_FILE + 1))
    encode(memoryview(READY))  # hashing and encryption work in this process (see _handshake)
    conn.send_bytes(READY)
    try:
        while True:
            try:
                paths: list[bytes] = pickle.loads(conn.recv_bytes())
            except (EOFError, OSError):
                return
            out = [_read_one(of, p, strategy, retry, view, encode) for p in paths]
            conn.send_bytes(pickle.dumps(out, protocol=pickle.HIGHEST_PROTOCOL))
    finally:
        of.close()


def _read_one(
    of: OpenFiles, path: bytes, strategy: Strategy, retry: RetryPolicy, view: memoryview, encode: Encode
) -> _Result:
    """The file's first attempt; its encoded blob when the attempt came out clean, else None."""
    try:
        n = 0
        with of.attempt(path, strategy, 1) as att:
            if att.refused is not None:
                return None
            while n < len(view):
                got = att.readinto(view[n:])
                if not got:
                    break
                n += got
        attempt = att.result()
        if n > SMALL_FILE or attempt.lease is not LeaseState.GRANTED or has_sqlite_header(view[:n]):
            return None
        step = decide_outcome([attempt], strategy, retry)
        if not isinstance(step, FileOutcome) or step.classification is not Classification.OK or step.writers:
            return None
        if n == 0:
            return attempt, 0, None, b"", None
        blob_id, stored, ulen = encode(view[:n])
        return attempt, n, blob_id, stored, ulen
    except Exception:  # anything unexpected: the walking process reads the file as always
        return None
