"""Open, guard, read and check one file: the session object and the per-attempt reader.

:class:`OpenFiles` lives for a backup session: it owns the SIGIO handler for lease
breaks, the writer index and the "leases unavailable" warning (given once). Each
:meth:`OpenFiles.attempt` opens a file per strategy, takes the lease or locks, and
returns a :class:`FileAttempt`: a file-like object (``readinto``/``read``) that releases
its guards the moment the read ends (EOF, an error, or leaving the ``with`` block) and
then reports an :class:`~shadowvault.openfiles.model.Attempt` of facts for
:func:`~shadowvault.openfiles.classify.decide`.

Lease breaks are delivered as signals to the process and handled by Python in the main
thread, so attempts must be made from the main thread (as the engine does).
"""

from __future__ import annotations

import errno
import os
import stat
import time
import weakref
from collections.abc import Callable
from types import TracebackType
from typing import Any

from .classify import judge
from .lease import BreakWatch
from .model import Attempt, BreakState, LeaseState, LockState, Reason, Strategy, WriterInfo
from .platform import Guards, default_guards
from .stat_check import changed_fields
from .strategy import Action, after_lease, after_lock, lease_is_probe
from .writers import WriterIndex, main_file_of

PathArg = str | bytes | os.PathLike[str] | os.PathLike[bytes]

_OPEN_FLAGS = os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK
_NOATIME: int = getattr(os, "O_NOATIME", 0)

_VANISHED = frozenset({errno.ENOENT, errno.ENOTDIR})
_DENIED = frozenset({errno.EACCES, errno.EPERM})
_NOT_REGULAR = frozenset({errno.ELOOP, errno.ENXIO, errno.EISDIR})


class OpenFiles:
    """Per-session open-file engine state. Create in the main thread; :meth:`close` at the end.

    ``on_warning`` receives session-level warnings as sentences (at most one about
    leases being unavailable). ``guards`` defaults to the running platform's;
    ``writers`` to a /proc writer index built lazily on first need.
    """

    def __init__(
        self,
        on_warning: Callable[[str], None] | None = None,
        *,
        guards: Guards | None = None,
        writers: WriterIndex | None = None,
    ) -> None:
        self._on_warning = on_warning
        self.guards = guards if guards is not None else default_guards()
        self.writers = writers if writers is not None else WriterIndex()
        self.watch = BreakWatch()
        self.leases_usable = True
        self._lease_warned = False
        # Attempts not yet finished; close() ends them before the SIGIO handler goes away.
        self._open_attempts: weakref.WeakSet[FileAttempt] = weakref.WeakSet()
        if self.guards.lease_signals:
            if BreakWatch.can_install():
                self.watch.install()
            else:
                # Without our handler a lease break's SIGIO would kill the process.
                self.leases_usable = False
                self.lease_unavailable(
                    "read leases are not used: the open-file engine was started outside the main thread"
                )

    def attempt(self, path: PathArg, strategy: Strategy, number: int = 1) -> FileAttempt:
        """Open ``path`` under ``strategy``; check ``refused`` before reading. Use as a context manager."""
        att = FileAttempt(self, path, strategy, number)
        if att._result is None:
            self._open_attempts.add(att)
        return att

    def lease_unavailable(self, why: str) -> None:
        """Warn, once per session, that writers cannot be held off by leases."""
        if self._lease_warned:
            return
        self._lease_warned = True
        if self._on_warning is not None:
            self._on_warning(why)

    def close(self) -> None:
        """Finish attempts still open (releasing their leases), restore the SIGIO handler. Idempotent."""
        for att in list(self._open_attempts):
            att.finish()
        self.watch.restore()

    def __enter__(self) -> OpenFiles:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _lease_warning(err: int | None) -> str:
    what = os.strerror(err) if err else "not supported"
    return (
        f"read leases are not available ({what}: not the file's owner and no CAP_LEASE, or a file "
        "system such as NFS or FUSE); open files are checked by comparing their status before and "
        "after the read, and writers cannot be held off"
    )


def _open_readonly(path: PathArg) -> int:
    """O_RDONLY open that neither follows a symlink nor hangs on a FIFO or someone's write lease."""
    flags = _OPEN_FLAGS | _NOATIME
    while True:
        try:
            return os.open(path, flags)
        except OSError as e:
            if e.errno == errno.EPERM and flags & _NOATIME:
                flags &= ~_NOATIME  # O_NOATIME needs ownership or CAP_FOWNER
            elif e.errno in (errno.EAGAIN, errno.EWOULDBLOCK) and flags & os.O_NONBLOCK:
                # Another process holds a write lease; a blocking open makes the kernel break it.
                flags &= ~os.O_NONBLOCK
            else:
                raise


def _error_reason(err: int | None) -> Reason:
    if err in _VANISHED:
        return Reason.VANISHED
    if err in _DENIED:
        return Reason.PERMISSION_DENIED
    if err in _NOT_REGULAR:
        return Reason.NOT_REGULAR
    return Reason.IO_ERROR


class FileAttempt:
    """One guarded read of one file. File-like: ``readinto`` and ``read`` until they return empty.

    Reading stops at the size the file had when the read started (``stat_before``).

    ``refused`` is a :class:`Reason` when there is nothing to read (the file is gone,
    unreadable, or the strategy refuses it); ``stat_before`` is the file's status taken
    once it was opened and guarded. Per-file problems never raise: a read error ends the
    read (``readinto`` returns 0) and shows in :meth:`result`, which must be consulted
    before the data is trusted.
    """

    def __init__(self, session: OpenFiles, path: PathArg, strategy: Strategy, number: int) -> None:
        self.session = session
        self.path = path
        self.strategy = strategy
        self.number = number
        self.refused: Reason | None = None
        self.stat_before: os.stat_result | None = None
        self._fd: int | None = None
        self._lease = LeaseState.NOT_TRIED
        self._lock = LockState.NOT_TRIED
        self._lease_held = False
        self._locks_held = False
        self._break = BreakState.NONE
        self._writers: tuple[WriterInfo, ...] = ()
        self._changed: tuple[str, ...] = ()
        self._error: Reason | None = None
        self._detail = ""
        self._bytes = 0
        self._limit: int | None = None
        self._started = time.time()
        self._t0 = time.monotonic()
        self._lease_t = self._t0
        self._result: Attempt | None = None
        self._open()

    # -- opening and guarding -------------------------------------------------------------

    def _open(self) -> None:
        try:
            self._fd = _open_readonly(self.path)
            st = os.fstat(self._fd)
        except OSError as e:
            self._refuse(_error_reason(e.errno), e.strerror or "")
            return
        if not stat.S_ISREG(st.st_mode):
            self._refuse(Reason.NOT_REGULAR, "")
            return
        try:
            action = self._guard(self._fd, st)
        except OSError as e:  # an errno none of the guards expected: not worth a crash
            self._refuse(Reason.IO_ERROR, e.strerror or str(e))
            return
        if action is Action.FAIL_ATTEMPT:
            self._refuse(judge(self._facts(), self.strategy).reason, "", error=False)
            return
        try:
            self.stat_before = os.fstat(self._fd)
        except OSError as e:
            self._refuse(Reason.IO_ERROR, e.strerror or "")
            return
        # Stop at the size seen now: a file appended to faster than we read would otherwise
        # never reach EOF. A file that grew is caught by the stat check anyway. Size 0 is
        # not trusted as a limit (some file systems report 0 for files with content).
        self._limit = self.stat_before.st_size or None

    def _guard(self, fd: int, st: os.stat_result) -> Action:
        session, guards = self.session, self.session.guards
        if session.leases_usable:
            self._lease_t = time.monotonic()
            self._lease, err = guards.take_lease(fd)
            if self._lease is LeaseState.UNSUPPORTED:
                session.lease_unavailable(_lease_warning(err))
            elif self._lease is LeaseState.GRANTED:
                if lease_is_probe(self.strategy):
                    guards.release_lease(fd)
                else:
                    self._lease_held = True
        else:
            self._lease = LeaseState.UNSUPPORTED
        if self._lease is LeaseState.REFUSED:
            self._writers = session.writers.lookup_fresh(st.st_dev, st.st_ino) or self._companion_writers()
        elif self._lease is not LeaseState.GRANTED:
            self._writers = session.writers.lookup(st.st_dev, st.st_ino)
        action = after_lease(self.strategy, self._lease, bool(self._writers))
        if action is Action.TAKE_LOCK:
            self._lock, _ = guards.take_locks(fd)
            self._locks_held = self._lock is LockState.GRANTED
            action = after_lock(self._lock)
        return action

    def _companion_writers(self) -> tuple[WriterInfo, ...]:
        """Writers of the database a journal/WAL belongs to (see ``writers.main_file_of``)."""
        main = main_file_of(os.fsencode(self.path))
        if main is None:
            return ()
        try:
            st = os.stat(main, follow_symlinks=False)
        except OSError:
            return ()
        return self.session.writers.lookup_fresh(st.st_dev, st.st_ino)

    @property
    def writer_seen(self) -> bool:
        """Whether some process had the file open for writing when it was opened and guarded
        (a refused lease proves one even when /proc cannot name it)."""
        return self._lease is LeaseState.REFUSED or bool(self._writers)

    @property
    def writers(self) -> tuple[WriterInfo, ...]:
        """The processes known to have had the file open for writing when it was opened."""
        return self._writers

    def _refuse(self, reason: Reason, detail: str, *, error: bool = True) -> None:
        # error=False: the file is fine but the strategy will not read it now (judge() says why).
        self.refused = reason
        if error:
            self._error = reason
        self._detail = detail
        self.finish()

    # -- reading --------------------------------------------------------------------------

    def readinto(self, buf: Any) -> int:
        """Read into a writable buffer; 0 at end of file, after an error, or once finished."""
        if self._fd is None or self._result is not None or len(buf) == 0:
            return 0
        view = memoryview(buf).cast("B")
        if self._limit is not None:
            left = self._limit - self._bytes
            if left <= 0:
                self.finish()
                return 0
            view = view[:left]
        try:
            n = os.readv(self._fd, [view])
        except OSError as e:
            self._error, self._detail = Reason.IO_ERROR, e.strerror or str(e)
            self.finish()
            return 0
        if n == 0:
            self.finish()  # release the guards the moment the read ends
        self._bytes += n
        return n

    def read(self, size: int = -1) -> bytes:
        """Read up to ``size`` bytes (all remaining when negative); ``b""`` at the end."""
        if size >= 0:
            buf = bytearray(size)
            n = self.readinto(buf)
            return bytes(buf[:n])
        parts: list[bytes] = []
        while chunk := self.read(1 << 20):
            parts.append(chunk)
        return b"".join(parts)

    # -- finishing ------------------------------------------------------------------------

    def finish(self) -> Attempt:
        """End the read: after-stat, release guards, close; return the attempt's facts. Idempotent."""
        if self._result is not None:
            return self._result
        fd = self._fd
        if fd is not None:
            try:
                self._check_after(fd)
            finally:
                self._release(fd)
                self._fd = None
                os.close(fd)
        self._result = self._facts()
        self.session._open_attempts.discard(self)
        return self._result

    def _check_after(self, fd: int) -> None:
        if self.refused is not None or self.stat_before is None:
            return
        try:
            after = os.fstat(fd)
        except OSError as e:
            self._error, self._detail = Reason.IO_ERROR, e.strerror or str(e)
            return
        try:
            path_after: os.stat_result | None = os.stat(self.path, follow_symlinks=False)
        except OSError:
            path_after = None
        self._changed = changed_fields(self.stat_before, after, path_after)

    def _release(self, fd: int) -> None:
        guards = self.session.guards
        if self._lease_held:
            self._lease_held = False
            intact = guards.lease_intact(fd)
            # Releasing fails only if the kernel already removed the lease at lease-break-time.
            try:
                released = guards.release_lease(fd)
            except OSError:
                released = True  # unexpected errno; closing the descriptor drops the lease anyway
            if not released:
                self._break = BreakState.REVOKED
            elif not intact:
                self._break = BreakState.OUTLASTED
                t = self.session.watch.first_break_since(self._lease_t)
                if t is not None and not self._detail:
                    self._detail = f"a writer waited {time.monotonic() - t:.1f} s for the read to end"
        if self._locks_held:
            self._locks_held = False
            guards.release_locks(fd)

    def _facts(self) -> Attempt:
        return Attempt(
            number=self.number,
            lease=self._lease,
            lock=self._lock,
            lease_break=self._break,
            changed=self._changed,
            writers=self._writers,
            error=self._error,
            detail=self._detail,
            bytes_read=self._bytes,
            started=self._started,
            duration=time.monotonic() - self._t0,
        )

    def result(self) -> Attempt:
        """The attempt's facts (finishing the read first if it is still open)."""
        return self.finish()

    def __enter__(self) -> FileAttempt:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.finish()
