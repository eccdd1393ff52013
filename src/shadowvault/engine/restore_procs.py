"""Forked writer processes for a restore: stored blobs decoded and written to files off the GIL.

Measured on an S3 restore of 10,003 files (414 MiB, loopback server, 2 cores): one restore thread
was as fast as four (6.4-6.8 s against 6.0-7.0 s), while the four used more CPU: the decoding
(MAC, AES-CTR, zstd, SHA-256) and the file creation, writes and metadata calls of every thread
take turns on one GIL, and its hand-offs around each system call cost 420,000 futex calls per
restore. A second core is only reachable by a second process. So a restore forks ``n`` writers
before its threads start (the repository's key is inherited, nothing else is set up in them).

The session's threads still read the packs (backends, their connections and retries stay in one
process, as does every decision of the walk); a thread holding a pack's stored ranges takes an idle
writer, hands it the bytes and the task's plan — which blob goes to which (file, offset), and per
file its destination and metadata — and waits for its report. The bytes go through a memory file
(``memfd``) of that writer, made before the fork: a ``pwrite`` per range here, and the writer maps it
(``MAP_POPULATE``) and copies each range out of the mapping. Sent through the connection instead,
416 MiB cost 1.1-1.9 s of CPU in the two processes (the kernel's copies in and out of the socket in
chunks, a copy into the receiver's buffer and one out of it, and a wake-up per chunk) against
0.3-0.4 s this way, on a restore that keeps both cores busy. A local pack is read by the writer
itself (``pack_file``). The writer decodes and verifies every blob and writes it by the threads'
rules (``restore_write``: ``pwrite`` with zero blocks as holes):

- a file all of whose blobs are in this task (most files: a pack's plan holds whole files) is the
  writer's own: it creates it (``O_EXCL``: never over something that appeared), writes it and
  finishes it (length, owner, mode, xattrs, times through the descriptor);
- a file whose blobs lie in several packs was created by the session before the task was sent and
  is only written here; the session finishes it after the report of its last task.

The report gives the bytes written, the files finished and, per file, what went wrong (an errno,
or that the file existed), which the session then reports as its threads would have. A blob that
fails verification ends the restore as before (its exception comes back). On a full target the
writer stops its task unless the restore goes on (``keep_going``). A writer ignores SIGINT (the
session handles it), exits when its connection closes (also when the session is killed), and one
that dies mid-task ends the restore with an error: which of its files were written is unknown.
"""

from __future__ import annotations

import contextlib
import errno
import mmap
import os
import pickle
import queue
import signal
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection

from shadowvault.errors import FatalError, IntegrityError, RepoError
from shadowvault.repo import BlobType
from shadowvault.repo.files.pack import PackedBlob
from shadowvault.repo.repository import BlobDecoder, pack_read_error

from .forked import READY, fork_worker, handshake, reap
from .restore_write import (
    CREATE,
    REOPEN,
    pwrite_all,
    remove_partial,
    set_meta_fd,
    stopped_error,
    write_sparse,
)

__all__ = ["FileSpec", "Task", "TaskReport", "WriterProcesses", "start_writers"]

_POPULATE = getattr(mmap, "MAP_POPULATE", 0)


FileSpec = tuple[bytes, bool, int, int, int, int, list[tuple[str, bytes]] | None, int, int]
"""A file of a task: destination, own (the writer creates and finishes it), length, uid, gid,
permission bits, xattrs, atime and mtime (ns)."""
Task = tuple[
    str | None,
    str | None,
    list[tuple[int, int, list[PackedBlob]]],
    dict[bytes, list[tuple[int, int]]],
    list[FileSpec],
]
"""Pack name, its local file (the writer reads the ranges itself) or None (they are in the writer's
memory file, one after the other), the ranges (offset in the pack, length, the blobs in it), blob id
→ (file number, offset) copies, and the files. Without ranges: create and finish the (empty) files."""
TaskReport = tuple[int, int, dict[int, int], list[tuple[int, int, str]]]
"""Bytes written, own files finished, highest end written per shared file, and problems
(file number, errno — 0: the file existed —, message)."""


def start_writers(
    requested: int, decoder: Callable[[], BlobDecoder], *, is_root: bool, keep_going: bool
) -> WriterProcesses | None:
    """``requested`` writers (-1: one per CPU when there are two or more); None when there are none,
    or none answered (the restore's threads then write as before)."""
    n = requested
    if n < 0:
        cpus = len(os.sched_getaffinity(0))
        n = cpus if cpus >= 2 else 0
    if n == 0:
        return None
    writers = WriterProcesses(n, decoder(), is_root=is_root, keep_going=keep_going)
    if writers.count:
        return writers
    writers.close()
    return None


class WriterProcesses:
    """``n`` forked writers (see the module docstring); fork before any thread of the restore starts."""

    def __init__(self, n: int, decode: BlobDecoder, *, is_root: bool, keep_going: bool) -> None:
        self._idle: queue.SimpleQueue[_Writer | None] = queue.SimpleQueue()
        self._broken = ""
        self._all: list[_Writer] = []
        memfds = [os.memfd_create("shadowvault-restore", os.MFD_CLOEXEC) for _ in range(n)]
        for memfd in memfds:

            def serve(conn: Connection, memfd: int = memfd) -> None:
                for other in memfds:  # another writer's memory is not this one's to keep alive
                    if other != memfd:
                        os.close(other)
                _serve(conn, memfd, decode, is_root=is_root, keep_going=keep_going)

            pid, conn = fork_worker(serve, [w.conn for w in self._all])
            self._all.append(_Writer(pid, conn, memfd))
        for w in self._all:
            if handshake(w.pid, w.conn):
                self._idle.put(w)
            else:
                w.conn.close()
        self.count = self._idle.qsize()
        """Writers that answered; with none, the restore's threads write as before."""

    def run(self, task: Task, ranges: Sequence[bytes]) -> TaskReport:
        """Have an idle writer do ``task`` with the stored bytes of its ranges; its report.

        Waits for a writer to be free. A blob that fails verification raises its ``IntegrityError``."""
        w = self._idle.get()
        if w is None:  # a writer was lost: every waiting thread ends too
            self._idle.put(None)
            raise FatalError(self._broken)
        try:
            w.fill(ranges)
        except OSError as exc:  # no memory for the bytes: nothing was sent, the writer is fine
            self._idle.put(w)
            why = exc.strerror or exc
            raise FatalError(f"cannot hand a pack to a restore writer process: {why}") from None
        try:
            w.conn.send_bytes(pickle.dumps(task, protocol=pickle.HIGHEST_PROTOCOL))
            reply = pickle.loads(w.conn.recv_bytes())
        except (EOFError, OSError) as exc:
            # Not put back: the restore ends, and which files the writer had written is unknown.
            self._broken = f"a restore writer process (pid {w.pid}) ended unexpectedly ({exc or 'no reply'})"
            self._idle.put(None)
            raise FatalError(self._broken) from None
        self._idle.put(w)
        if reply[0] == "fatal":
            raise IntegrityError(reply[1]) if reply[2] else RepoError(reply[1])
        report: TaskReport = reply[1]
        return report

    def close(self) -> None:
        """End the writers (closing their connections) and reap them."""
        for w in self._all:
            w.conn.close()
        reap(w.pid for w in self._all)
        for w in self._all:
            os.close(w.memfd)
        self._all = []


class _Writer:
    """One writer as the session sees it: its pid, connection and memory file."""

    def __init__(self, pid: int, conn: Connection, memfd: int) -> None:
        self.pid, self.conn, self.memfd = pid, conn, memfd
        self._size = 0

    def fill(self, ranges: Sequence[bytes]) -> None:
        """Put ``ranges`` one after the other at the start of the memory file (grown, never shrunk:
        the next pack of about the same size reuses its pages)."""
        total = sum(len(raw) for raw in ranges)
        if total > self._size:
            os.ftruncate(self.memfd, total)
            self._size = total
        pos = 0
        for raw in ranges:  # a few ranges per pack: a write each
            pos = pwrite_all(self.memfd, memoryview(raw), pos)


# ----- in the writer ----------------------------------------------------------------------------


def _serve(conn: Connection, memfd: int, decode: BlobDecoder, *, is_root: bool, keep_going: bool) -> None:
    """A writer's life: do tasks until the connection closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the session handles Ctrl-C and closes us
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    # Decoding works in this process (forked.handshake): a MAC check of garbage must fail cleanly.
    with contextlib.suppress(IntegrityError):
        decode(bytes(64), PackedBlob(BlobType.DATA, bytes(32), 0, 64), "handshake")
    conn.send_bytes(READY)
    while True:
        try:
            task: Task = pickle.loads(conn.recv_bytes())
        except (EOFError, OSError):
            return
        mapped = _map(memfd, task) if task[1] is None else None
        try:
            raws = _views(mapped, task[2]) if mapped is not None else None
            reply: tuple[object, ...] = ("ok", _write_task(task, raws, decode, is_root, keep_going))
        except RepoError as exc:  # IntegrityError, or a blob whose plan is inconsistent
            reply = ("fatal", str(exc), isinstance(exc, IntegrityError))
        finally:
            if mapped is not None:
                mapped.close()
        conn.send_bytes(pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL))


def _map(memfd: int, task: Task) -> mmap.mmap | None:
    """The task's bytes in the memory file, mapped read-only with their pages in place (one
    ``mmap`` instead of a page fault per 4 KiB); None when the task has none."""
    total = sum(length for _, length, _ in task[2])
    if not total:
        return None
    return mmap.mmap(memfd, total, mmap.MAP_SHARED | _POPULATE, mmap.PROT_READ)


def _views(mapped: mmap.mmap, ranges: list[tuple[int, int, list[PackedBlob]]]) -> list[bytes]:
    """Each range's bytes: copies of the mapping's slices (decoding keeps views of them, and a
    mapping with views into it cannot be closed; one copy is what the connection cost too)."""
    out: list[bytes] = []
    pos = 0
    for _, length, _ in ranges:
        out.append(mapped[pos : pos + length])
        pos += length
    return out


def _read_ranges(pack: str, path: str, ranges: list[tuple[int, int, list[PackedBlob]]]) -> list[bytes]:
    """The ranges of a local pack file."""
    out: list[bytes] = []
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise pack_read_error(pack, ranges[0][0], ranges[0][1], exc) from exc
    try:
        for start, length, _ in ranges:
            try:
                data = os.pread(fd, length, start)
                if len(data) != length:
                    raise EOFError(f"{path}: wanted {length} bytes at {start}, file is shorter")
            except (OSError, EOFError) as exc:
                raise pack_read_error(pack, start, length, exc) from exc
            out.append(data)
    finally:
        os.close(fd)
    return out


def _write_task(
    task: Task, raws: list[bytes] | None, decode: BlobDecoder, is_root: bool, keep_going: bool
) -> TaskReport:
    """Decode the task's blobs and write every copy; create and finish the own files."""
    pack, path, ranges, copies, files = task
    if raws is None:
        raws = _read_ranges(pack or "", path or "", ranges) if ranges else []
    pending = [0] * len(files)
    for targets in copies.values():
        for j, _ in targets:
            pending[j] += 1
    created = [False] * len(files)
    failed = [False] * len(files)
    ends: dict[int, int] = {}
    problems: list[tuple[int, int, str]] = []
    written = finished = 0
    full = [False]  # the target is full and the restore stops (a list: set inside ``fail``)

    def fail(j: int, exc: OSError, *, content: bool = True) -> None:
        # A file of our own whose content failed is removed (``restore_write.remove_partial``); a
        # shared file is the session's to remove when it gets the report.
        if content and created[j] and not failed[j]:
            remove_partial(files[j][0])
        failed[j] = True
        problems.append((j, exc.errno or errno.EIO, exc.strerror or str(exc)))
        if exc.errno in (errno.ENOSPC, errno.EDQUOT) and not keep_going:
            full[0] = True

    def open_(j: int) -> int:
        spec = files[j]
        try:
            if created[j] or not spec[1]:
                return os.open(spec[0], REOPEN)
            fd = os.open(spec[0], CREATE, 0o600)
            created[j] = True
            return fd
        except FileExistsError as exc:
            failed[j] = True
            problems.append((j, 0, exc.strerror or "exists"))
        except OSError as exc:
            fail(j, exc)
        return -1

    def finish(j: int, fd: int, end: int) -> None:
        nonlocal finished
        _, _, size, uid, gid, perms, xattrs, atime, mtime = files[j]
        try:
            if end != size:
                os.ftruncate(fd, size)
            set_meta_fd(fd, uid, gid, perms, xattrs, atime, mtime, is_root=is_root)
            finished += 1
        except OSError as exc:
            fail(j, exc, content=False)  # written whole: kept, as the threads keep it

    job, fd = -1, -1
    try:
        for (start, _, blobs), raw in zip(ranges, raws, strict=True):
            view = memoryview(raw)
            for b in blobs:
                if full[0]:
                    break
                data = decode(view[b.offset - start : b.offset - start + b.length], b, pack or "")
                for j, offset in copies[b.id]:
                    if j != job:
                        # Consecutive blobs of a pack mostly belong to the same file: keep its
                        # descriptor open across them.
                        if fd >= 0:
                            os.close(fd)
                        job, fd = j, -1
                        if not failed[j]:
                            fd = open_(j)
                    end = -1
                    if fd >= 0 and not failed[j]:
                        try:
                            end = write_sparse(fd, data, offset)
                        except OSError as exc:
                            fail(j, exc)
                        written += len(data)
                    # The highest end written: the session's for a shared file, the finish's for
                    # an own one.
                    if end > ends.get(j, 0):
                        ends[j] = end
                    pending[j] -= 1
                    if not files[j][1]:
                        continue
                    if pending[j] == 0:
                        if fd >= 0 and not failed[j]:
                            finish(j, fd, ends.pop(j, 0))
                        ends.pop(j, None)
                        if fd >= 0:
                            os.close(fd)
                        job, fd = -1, -1
        if not ranges:  # files without content
            for j in range(len(files)):
                if full[0]:
                    break
                fd = open_(j)
                if fd >= 0:
                    try:
                        finish(j, fd, 0)
                    finally:
                        os.close(fd)
                    fd = -1
        if full[0]:
            # Stopped at a full target: a file with copies of this task left unwritten is
            # incomplete (an own one is removed here, a shared one by the session on the report).
            stopped = stopped_error()
            for j in range(len(files)):
                if pending[j] > 0 and not failed[j]:
                    fail(j, stopped)
    finally:
        if fd >= 0:
            os.close(fd)
    shared = {j: end for j, end in ends.items() if not files[j][1]}
    return written, finished, shared, problems
