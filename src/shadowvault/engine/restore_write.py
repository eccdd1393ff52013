"""The worker side of a restore: planned blobs of a pack → bytes in the restored files.

``RestoreSession`` (``engine.restore``) walks the snapshot and plans, per pack, which blob goes to
which (file, offset); this base class holds what the worker threads do with such a plan: read the
pack's wanted blobs in few large ranges (``RestoreRepo.load_pack_blobs``: verified and decoded),
``pwrite`` every copy of each blob with all-zero 64 KiB blocks left as holes, create each file on its
first write (exactly one ``O_EXCL`` open) and finish it (length, owner, mode, xattrs, times through
its descriptor) with its last one. Files without content are created in batches. Errors are
per file and reported through the session's ``_error`` / ``_skipped_existing``; a file whose
content could not be written is removed if this restore created it (``remove_partial``).
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

from shadowvault.repo import BlobType, Node
from shadowvault.repo.files.pack import PackedBlob
from shadowvault.repo.repository import PACK_READ_WINDOW, pack_ranges

from .diskfull import SpaceGuard
from .nodes import posix_permissions
from .ports import RestoreRepo

if TYPE_CHECKING:
    from .restore_procs import FileSpec, TaskReport, WriterProcesses

__all__ = [
    "CREATE",
    "CREATE_BATCH",
    "REOPEN",
    "TASK_BYTES",
    "ContentWriter",
    "FileJob",
    "Placements",
    "set_meta_fd",
    "write_sparse",
]

_HOLE_BLOCK = 64 * 1024
_ZEROS = memoryview(bytes(_HOLE_BLOCK))
CREATE_BATCH = 64
TASK_BYTES = PACK_READ_WINDOW
"""Stored bytes of one pack planned before they go to a worker (during the walk)."""
CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
REOPEN = os.O_WRONLY | os.O_CLOEXEC


class FileJob:
    """One regular file being restored: how many blob copies are still to be written.

    Workers writing different blobs of the same file share this record; ``lock``
    guards creation (exactly one ``O_EXCL`` open) and the countdown, so the
    worker that writes the last blob is the one that finishes the file.

    It keeps the few node fields the finish needs, not the ``Node``: the walk plans files far
    ahead of the workers, and a node (a dict of 21 fields, its content ids) per planned file was
    most of a restore's peak memory on many small files.
    """

    __slots__ = (
        "atime",
        "created",
        "dest",
        "end",
        "failed",
        "gid",
        "lock",
        "mode",
        "mtime",
        "node_size",
        "pending",
        "shared",
        "size",
        "uid",
        "xattrs",
    )

    def __init__(self, dest: bytes, node: Node) -> None:
        self.dest = dest
        self.uid, self.gid, self.mode = node.uid, node.gid, node.mode
        self.xattrs = node.extended_attributes or None
        self.atime, self.mtime = node.atime, node.mtime
        self.node_size = node.size  # the size the snapshot records (counted when planned)
        self.size = 0  # sum of the blobs' plaintext lengths: the restored length
        self.pending = 0
        self.end = 0  # highest offset written so far; below ``size`` means trailing hole
        self.created = False
        self.failed = False
        self.shared = False  # its blobs lie in several packs (several tasks write it)
        self.lock = threading.Lock()


Targets = list[tuple[FileJob, int]]
Placements = dict[bytes, tuple[PackedBlob | None, Targets]]
"""Blob id → its pack header entry (None: not indexed yet) and every (file, offset) it goes to."""


class ContentWriter:
    """Writes planned blobs into files from worker threads (see the module docstring).

    ``RestoreSession`` subclasses it: the attributes below are set by its ``__init__``.
    """

    repo: RestoreRepo
    _pool: ThreadPoolExecutor
    _plan: dict[str | None, Placements]
    _plan_bytes: dict[str, int]
    _to_create: list[FileJob]
    _tasks: list[Future[None]]
    _max_queued: int
    """Tasks the walk may hand the workers ahead of them (then it waits for the oldest)."""
    _waited: int
    """``_tasks[:_waited]`` are done: the walk waited for them."""
    _not_restored: list[FileJob]
    _report_lock: threading.Lock
    _space: SpaceGuard
    _is_root: bool
    _overwrite: str
    _writers: WriterProcesses | None
    """Forked writers that decode and write packs off the GIL (``engine.restore_procs``), if any."""
    bytes_written: int
    files_written: int

    def _error(self, path: bytes, e: OSError) -> None:
        raise NotImplementedError

    def _skipped_existing(self, dest: bytes) -> None:
        raise NotImplementedError

    def _submit_pack(self, pack: str | None) -> None:
        """Hand the planned blobs of ``pack`` to a worker; later ones start a new plan."""
        blobs = self._plan.pop(pack)
        if pack is not None:
            del self._plan_bytes[pack]
        if self._space.stopped:
            # The target is full: the walk only finishes counting what was wanted.
            self._abandon(blobs)
            return
        self._tasks.append(self._pool.submit(self._restore_pack, pack, blobs))
        self._bound_queue()

    def _bound_queue(self) -> None:
        """Wait while more than ``_max_queued`` tasks are queued or running (walking thread only).

        The walk plans files faster than the workers create and write them when files are small,
        and a planned file holds memory until it is written: with 200,000 files of 0-2 KiB the
        whole snapshot was planned before a tenth of it was written. Waiting for the oldest task
        bounds that by the queue, not by the snapshot's size. No task waits for the walk (a pack's
        plan is handed over only at a file boundary), so this cannot deadlock.
        """
        tasks = self._tasks
        while len(tasks) - self._waited > self._max_queued:
            tasks[self._waited].result()
            self._waited += 1

    def _pack_blobs(self, pack: str | None, blobs: Placements) -> Iterator[tuple[bytes, bytes]]:
        """(id, verified plaintext) of the wanted blobs of one pack, read in few large ranges."""
        if pack is None:
            for blob_id in blobs:
                yield blob_id, self.repo.load_blob(BlobType.DATA, blob_id)
            return
        entries = [entry for entry, _ in blobs.values() if entry is not None]
        for entry, data in self.repo.load_pack_blobs(pack, entries):
            yield entry.id, data

    def _restore_pack(self, pack: str | None, blobs: Placements) -> None:
        """Write every copy of every wanted blob of one pack; finish files whose last blob this was."""
        if self._writers is not None and pack is not None:
            self._restore_pack_forked(pack, blobs)
            return
        job: FileJob | None = None
        fd = -1
        try:
            for blob_id, data in self._pack_blobs(pack, blobs):
                if self._space.stopped:
                    self._abandon(blobs)
                    return
                for target, offset in blobs[blob_id][1]:
                    if target is not job:
                        # Consecutive blobs of a pack mostly belong to the same file:
                        # keep its descriptor open across them.
                        if fd >= 0:
                            os.close(fd)
                        job, fd = target, -1
                        fd = self._open(job)
                    end = -1
                    if fd >= 0 and not job.failed:
                        try:
                            end = write_sparse(fd, data, offset)
                        except OSError as e:
                            self._fail(job, e)
                        with self._report_lock:
                            self.bytes_written += len(data)
                    with job.lock:
                        job.pending -= 1
                        if end > job.end:
                            job.end = end
                        last = job.pending == 0
                    if last:
                        if fd >= 0:
                            self._finish(job, fd)
                        job, fd = None, -1
        finally:
            if fd >= 0:
                os.close(fd)

    def _submit_creates(self) -> None:
        if self._to_create:
            self._tasks.append(self._pool.submit(self._create_files, self._to_create))
            self._to_create = []
            self._bound_queue()

    def _create_files(self, jobs: list[FileJob]) -> None:
        """Create and finish files without content (the others are created by their first write)."""
        if self._writers is not None:
            self._apply_report(
                jobs, {}, self._writers.run((None, None, [], {}, [_spec(j) for j in jobs]), [])
            )
            return
        for job in jobs:
            fd = self._open(job)
            if fd >= 0:
                self._finish(job, fd)

    def _restore_pack_forked(self, pack: str, blobs: Placements) -> None:
        """``_restore_pack`` by a writer process: this thread reads the stored ranges and hands them
        over with the plan; files of several packs are created here first and finished here by
        the task that writes their last blob (``engine.restore_procs``)."""
        if self._space.stopped:
            self._abandon(blobs)
            return
        assert self._writers is not None
        entries = [entry for entry, _ in blobs.values() if entry is not None]
        # A local pack is read by the writer itself: no copy through its connection.
        path = self.repo.pack_file(pack)
        raws: list[bytes] = []
        if path is not None:
            spans = pack_ranges(entries)
        else:
            spans = []
            for start, raw, blobs_in in self.repo.load_pack_ranges(pack, entries):
                spans.append((start, len(raw), blobs_in))
                raws.append(raw)
        number: dict[FileJob, int] = {}
        jobs: list[FileJob] = []
        shared: dict[FileJob, int] = {}  # copies in this task, sent or not
        copies: dict[bytes, list[tuple[int, int]]] = {}
        for blob_id, (_, targets) in blobs.items():
            sent: list[tuple[int, int]] = []
            for job, offset in targets:
                j = number.get(job)
                if j is None:
                    j = -1
                    if not job.shared:
                        j = len(jobs)
                    else:
                        fd = self._open(job)  # created here, once, before any writer opens it
                        if fd >= 0:
                            os.close(fd)
                            j = len(jobs)
                    number[job] = j
                    if j >= 0:
                        jobs.append(job)
                if job.shared:
                    shared[job] = shared.get(job, 0) + 1
                if j >= 0:
                    sent.append((j, offset))
            copies[blob_id] = sent
        report = self._writers.run((pack, path, spans, copies, [_spec(j) for j in jobs]), raws)
        self._apply_report(jobs, shared, report)

    def _apply_report(self, jobs: list[FileJob], shared: dict[FileJob, int], report: TaskReport) -> None:
        """Take a writer's report: count, report problems, finish shared files whose last task this was."""
        written, finished, ends, problems = report
        with self._report_lock:
            self.bytes_written += written
            self.files_written += finished
        for j, err, message in problems:
            job = jobs[j]
            if err:
                self._fail(job, OSError(err, message))
            else:
                self._existed(job, FileExistsError(errno.EEXIST, message))
        for j, end in ends.items():
            job = jobs[j]
            with job.lock:
                if end > job.end:
                    job.end = end
        for job, n in shared.items():
            with job.lock:
                job.pending -= n
                last = job.pending == 0
            if last:
                fd = self._open(job)
                if fd >= 0:
                    self._finish(job, fd)

    def _open(self, job: FileJob) -> int:
        """A write descriptor for the job's file, creating it on first use; -1 when it failed."""
        with job.lock:
            if job.failed:
                return -1
            try:
                if job.created:
                    return os.open(job.dest, REOPEN)
                fd = os.open(job.dest, CREATE, 0o600)
                job.created = True
                return fd
            except FileExistsError as e:
                self._existed(job, e)
                return -1
            except OSError as e:
                job.failed = True
                self._error(job.dest, e)
                return -1

    def _existed(self, job: FileJob, e: FileExistsError) -> None:
        """The file's ``O_EXCL`` create met something (here or in a writer process)."""
        job.failed = True
        if self._overwrite != "never":  # something appeared after the unlink: report
            self._error(job.dest, e)
        else:
            # Counted as a file when planned; the main thread takes it back
            # (it may be counting other files right now, so not from here).
            self._not_restored.append(job)
            self._skipped_existing(job.dest)

    def _fail(self, job: FileJob, e: OSError) -> None:
        """Part of the file's content could not be written: it is reported, and removed if this
        restore created it (``remove_partial``)."""
        with job.lock:
            first = not job.failed
            job.failed = True
            created = job.created
        if first:
            if created:
                remove_partial(job.dest)
            self._error(job.dest, e)

    def _abandon(self, blobs: Placements) -> None:
        """The restore stopped at a full target before these copies were written: a file of theirs
        that exists and still waits for content is incomplete, so it goes (``_fail``). Files of
        the plan whose copies were all written (``pending`` 0) are complete and stay."""
        stopped = stopped_error()
        for _, targets in blobs.values():
            for job, _ in targets:
                with job.lock:
                    incomplete = job.created and not job.failed and job.pending > 0
                if incomplete:
                    self._fail(job, stopped)

    def _finish(self, job: FileJob, fd: int) -> None:
        """Give the file its length (trailing hole) and metadata, then close ``fd``."""
        try:
            if job.failed:
                return
            try:
                if job.end != job.size:
                    os.ftruncate(fd, job.size)
            except OSError as e:
                self._error(job.dest, e)
                return
            self._apply_meta_fd(fd, job)
            with self._report_lock:
                self.files_written += 1
        finally:
            os.close(fd)

    def _apply_meta_fd(self, fd: int, job: FileJob) -> None:
        try:
            set_meta_fd(
                fd,
                job.uid,
                job.gid,
                posix_permissions(job.mode),
                job.xattrs,
                job.atime,
                job.mtime,
                is_root=self._is_root,
            )
        except OSError as e:
            self._error(job.dest, e)


def _spec(job: FileJob) -> FileSpec:
    """What a writer process needs of a file (``restore_procs.FileSpec``)."""
    perms = posix_permissions(job.mode)
    return (job.dest, not job.shared, job.size, job.uid, job.gid, perms, job.xattrs, job.atime, job.mtime)


def set_meta_fd(
    fd: int,
    uid: int,
    gid: int,
    perms: int,
    xattrs: list[tuple[str, bytes]] | None,
    atime: int,
    mtime: int,
    *,
    is_root: bool,
) -> None:
    """Owner (as root), permissions, xattrs and times of a regular file, through its open
    descriptor (no path lookups). Owner before mode: a chown clears set-user-ID bits."""
    if is_root:
        os.chown(fd, uid, gid)
    os.chmod(fd, perms)
    for name, value in xattrs or ():
        try:
            os.setxattr(fd, name, value)
        except OSError as e:
            if e.errno not in (errno.ENOTSUP, errno.EPERM):
                raise
    os.utime(fd, ns=(atime, mtime))


def stopped_error() -> OSError:
    """What a file the restore began is failed with when the restore stops at a full target (the
    session's ``_abandon`` and a writer process that stops its task)."""
    return OSError(errno.ENOSPC, "not written: the restore stopped at a full target")


def remove_partial(dest: bytes) -> None:
    """Remove a file this restore created and could not write whole (a full target, an I/O error).

    Left in place it could look restored: blobs written by other tasks after the failed one give
    it its full length, with a hole (zeros) where the failed blob belongs. Only files the restore
    created itself (``O_EXCL``) come here, never a user's; a descriptor still open on it (another
    task's) writes into the unlinked file, and a later open of the path fails and is not reported
    again. Best effort: the file is already reported as not restored."""
    with contextlib.suppress(OSError):
        os.unlink(dest)


def write_sparse(fd: int, data: bytes, offset: int) -> int:
    """``pwrite`` ``data`` at ``offset`` leaving all-zero 64 KiB blocks as holes.

    Returns the end offset of the last byte written, or -1 when everything was zero.
    Runs of non-zero blocks go out in one write each.
    """
    n = len(data)
    if n <= _HOLE_BLOCK:  # most blobs: one block, no slicing
        if data.startswith(_ZEROS[:n]):
            return -1
        written = os.pwrite(fd, data, offset)
        if written == n:
            return offset + n
        return pwrite_all(fd, memoryview(data)[written:], offset + written)
    view = memoryview(data)
    end = -1
    run = -1  # start of the current run of non-zero blocks
    for start in range(0, n, _HOLE_BLOCK):
        # startswith compares in place; comparing memoryviews goes byte by byte.
        if not data.startswith(_ZEROS[: min(_HOLE_BLOCK, n - start)], start):
            if run < 0:
                run = start
        elif run >= 0:
            end = pwrite_all(fd, view[run:start], offset + run)
            run = -1
    if run >= 0:
        end = pwrite_all(fd, view[run:], offset + run)
    return end


def pwrite_all(fd: int, chunk: memoryview, pos: int) -> int:
    """Write all of ``chunk`` at ``pos``; returns the end offset."""
    while chunk:
        written = os.pwrite(fd, chunk, pos)
        chunk = chunk[written:]
        pos += written
    return pos
