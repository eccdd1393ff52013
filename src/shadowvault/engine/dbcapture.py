"""How a backup session saves SQLite database groups (DESIGN "Databases are units, not files").

The session asks :class:`DatabaseCapture` about every live regular file before and while it
reads it (files read from a volume snapshot or reflink clone never come here: those are one
moment already). For a database:

* **in use** (a companion exists, or a writer has it open): copied through SQLite's online
  backup API (:mod:`engine.hotbackup.sqlite`) into a temporary file under the state directory,
  streamed into the repository under the database's own path, deleted. Companions are not
  stored: a consistent database needs none. A copy SQLite cannot make because a writer keeps
  the database locked is retried by the set's retry rules, then ``failed`` naming the writer.
* **idle** (no companion, no writer): read as a plain file, so an unchanged database dedups
  and restores byte-identical.
* ``sqlite_aware = false``: the old per-file reads, but the database and its companions are
  read together as one unit and are ``suspect`` as a whole (or retried, under the strict
  strategies) unless every file was read intact and none changed between the first and the
  last read.
* a ``sqlite`` set: every listed database is copied through SQLite, idle or not, and the copy
  must pass ``PRAGMA quick_check`` before it is stored.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from shadowvault.fs import FileMeta, read_meta
from shadowvault.openfiles import (
    Classification,
    FileAttempt,
    FileOutcome,
    Reason,
    Retry,
    RetryPolicy,
    WriterInfo,
    decide,
)
from shadowvault.openfiles.model import describe_writers
from shadowvault.openfiles.strategy import STRICT

from .dbgroups import (
    COMPANION_SUFFIXES,
    DatabaseNames,
    group_verdict,
    member_states,
    present_companions,
    torn_outcome,
)
from .events import FileRetryScheduled
from .hotbackup.sqlite import (
    SqliteCopy,
    SqliteFailure,
    copy_database,
    has_sqlite_header,
    read_header,
    remove_stale_copies,
)

if TYPE_CHECKING:
    from .blobstage import BlobRef
    from .filesaver import FileSaver, WaitingFile

__all__ = ["CaptureAttempt", "DatabaseCapture", "decide_capture"]

#: Seconds SQLite's busy handler waits for a writer's lock per attempt (then the retry rules).
DEFAULT_BUSY_TIMEOUT = 5.0

# Errors that say "this is no database SQLite can read": in a file-system set the file is then
# read as the plain file it is (the per-file strategy judges it), with a warning.
_NOT_A_DATABASE = frozenset({"not-a-database", "corrupt"})


@dataclass(frozen=True)
class CaptureAttempt:
    """One try at copying a database through SQLite."""

    number: int
    result: SqliteCopy | SqliteFailure
    writers: tuple[WriterInfo, ...]


def decide_capture(attempts: list[CaptureAttempt], policy: RetryPolicy) -> Retry | FileOutcome:
    """Pure: the copies tried so far → retry later, or the database's final outcome."""
    last = attempts[-1]
    writers = last.writers or next((a.writers for a in reversed(attempts) if a.writers), ())
    who = describe_writers(writers)
    if isinstance(last.result, SqliteCopy):
        held_ms = last.result.held * 1000
        message = f"sqlite online backup (read transaction {held_ms:.0f} ms)"
        if who:
            message += f"; open for writing by {who}"
        return FileOutcome(Classification.OK, Reason.SQLITE_BACKUP, message, len(attempts), writers)
    failure = last.result
    if failure.retryable and len(attempts) < policy.max_attempts:
        return Retry(after=policy.interval, number=last.number + 1, reason=Reason.DATABASE_BUSY)
    reason = Reason.DATABASE_BUSY if failure.retryable else Reason.DATABASE_ERROR
    message = f"no consistent copy through SQLite: {failure.message}"
    if who:
        message += f"; held by {who}"
    return FileOutcome(Classification.FAILED, reason, message, len(attempts), writers)


class DatabaseCapture:
    """The session's database-group handling (see the module docstring)."""

    def __init__(self, session: FileSaver) -> None:
        self.s = session
        opt = session.opt
        self.names = DatabaseNames()
        # The CLI passes its state directory; a Python API caller without one gets a private
        # directory of its own (made on first use, removed at the end of the session).
        self._own_tmp = opt.state_dir is None
        self.tmp_dir = Path(opt.state_dir) / "sqlite-tmp" if opt.state_dir else Path()
        self.busy_timeout = opt.sqlite_busy_timeout
        self._cleaned = False

    # ----- the walk asks ---------------------------------------------------------------------

    def listed(self, directory: bytes, names: list[bytes]) -> None:
        """A directory was listed (live): note its companion names."""
        self.names.listed(directory, names)

    def may_reuse(self, orig: bytes) -> bool:
        """A file with companions may hold new commits in its WAL though its own status is the
        parent's, and a companion goes with its database: neither is taken unchanged from the
        parent snapshot."""
        return not (self.names.has_listed_companions(orig) or self.names.companion_of_database(orig))

    def may_take_over(self, orig: bytes) -> bool:
        """``before_read`` may deal with this file itself (a companion, or a database to copy)."""
        names = self.names
        return self.s.opt.sqlite_set or names.has_listed_companions(orig) or names.companion_of_database(orig)

    def before_read(self, w: WaitingFile, meta: FileMeta) -> bool:
        """Called for a live file before its raw read; True when the file was dealt with here
        (a companion that is not stored on its own, or a database taken over as a group)."""
        if self.names.companion_of_database(w.orig):
            self.s.builder.settle(w.dir, w.slot, None)  # its database holds it (or it is read with it)
            return True
        if not (self.s.opt.sqlite_set or self.names.has_listed_companions(w.orig)):
            return False
        if not has_sqlite_header(read_header(w.read_path)):
            if self.s.opt.sqlite_set:
                self._fail(w, "not a SQLite database (no SQLite header)")
                return True
            return False
        self.names.mark_database(w.orig)
        self.take_over(w, meta)
        return True

    def probe(self, w: WaitingFile, att: FileAttempt, head: memoryview) -> bool:
        """Look at the first block of a raw read; True when the read must stop because the file
        is a database in use (a writer had it open, or a companion exists now)."""
        if not has_sqlite_header(head):
            return False
        self.names.mark_database(w.orig)
        if not self.s.opt.sqlite_aware:
            return bool(present_companions(w.orig))  # a group after all: read it as one unit
        return att.writer_seen or bool(present_companions(w.orig))

    def refused(self, w: WaitingFile, att: FileAttempt) -> bool:
        """A raw read the strategy refused (a writer): True when it is a database, taken over."""
        if not att.writer_seen or not self.s.opt.sqlite_aware:
            return False
        if not has_sqlite_header(read_header(w.read_path)):
            return False
        self.names.mark_database(w.orig)
        return True

    def after_read(self, w: WaitingFile) -> bool:
        """After an idle database's raw read: True when a companion appeared meanwhile (then the
        read may not fit its journal or WAL, and the database is taken over)."""
        return self.names.is_database(w.orig) and bool(present_companions(w.orig))

    # ----- taking a database over --------------------------------------------------------------

    def take_over(self, w: WaitingFile, meta: FileMeta) -> None:
        """Save ``w`` (a database) as a unit: through SQLite, or (sqlite_aware off) as a raw group."""
        w.attempts = []
        if self.s.opt.sqlite_aware or self.s.opt.sqlite_set:
            w.kind = "sqlite"
            self.capture(w, meta)
        else:
            w.kind = "group"
            w.members = [self.s.new_waiting(w.dir, c, c) for c in present_companions(w.orig)]
            self.read_group(w, meta)

    def attempt(self, w: WaitingFile, meta: FileMeta) -> None:
        """Another attempt of a taken-over database (from the retry queue)."""
        if w.kind == "sqlite":
            self.capture(w, meta)
        else:
            self.read_group(w, meta)

    def capture(self, w: WaitingFile, meta: FileMeta) -> None:
        """One copy through SQLite; stream it in, or retry later, or settle the failure."""
        if not self._cleaned:
            self._cleaned = True
            if self._own_tmp:
                self.tmp_dir = Path(tempfile.mkdtemp(prefix="shadowvault-sqlite-"))
            for path in remove_stale_copies(self.tmp_dir):
                self.s.warn(f"removed {path}, a database copy left by a session that no longer runs")
        result = copy_database(
            w.read_path, self.tmp_dir, busy_timeout=self.busy_timeout, quick_check=self.s.opt.sqlite_set
        )
        writers = self._writers(meta)
        if isinstance(result, SqliteFailure) and result.kind in _NOT_A_DATABASE and not self.s.opt.sqlite_set:
            self.s.warn(
                f"{os.fsdecode(w.orig)} starts with the SQLite header but SQLite cannot read it "
                f"({result.message}); backed up as a plain file"
            )
            w.kind = "file"
            w.plain_only = True
            self.s.attempt_file(w, meta)
            return
        w.attempts.append(CaptureAttempt(len(w.attempts) + 1, result, writers))
        step = decide_capture(w.attempts, self.s.opt.retry)
        if isinstance(step, Retry):
            self.s.queue.push(w, time.monotonic() + step.after)
            self.s.sink(
                FileRetryScheduled(os.fsdecode(w.orig), len(w.attempts), step.after, step.reason.value)
            )
            return
        chunks: list[BlobRef] = []
        size = 0
        if isinstance(result, SqliteCopy):
            try:
                with open(result.path, "rb") as f:
                    size = self.s.chunk_into(f, chunks, result.size)
            finally:
                result.path.unlink(missing_ok=True)
        stored = dataclasses.replace(meta, size=size) if isinstance(result, SqliteCopy) else meta
        self.s.settle(w, stored, step, chunks, size)

    def close(self) -> None:
        """End of session: remove the private copy directory (when this session made one)."""
        if self._own_tmp and self._cleaned:
            shutil.rmtree(self.tmp_dir, ignore_errors=True)

    def _writers(self, meta: FileMeta) -> tuple[WriterInfo, ...]:
        return self.s.of.writers.lookup_fresh(meta.device, meta.inode)

    def _fail(self, w: WaitingFile, message: str) -> None:
        outcome = FileOutcome(Classification.FAILED, Reason.DATABASE_ERROR, message, 1, ())
        self.s.settle(w, None, outcome, [], 0)

    # ----- sqlite_aware = false: the group's files read raw, judged together -------------------

    def read_group(self, w: WaitingFile, meta: FileMeta) -> None:
        """Read the database and its companions one after the other, then judge them together."""
        members = [w, *w.members]
        names = [m.orig for m in members]
        watch = [w.orig + s for s in COMPANION_SUFFIXES]
        before = member_states([w.orig, *watch])
        strategy = self.s.opt.strategy
        number = len(w.attempts) + 1
        reads: list[tuple[FileMeta | None, FileOutcome, list[BlobRef], int]] = []
        for m in members:
            try:
                mmeta: FileMeta | None = read_meta(m.read_path)
            except OSError:
                mmeta = None
            chunks: list[BlobRef] = []
            size = 0
            with self.s.of.attempt(m.read_path, strategy, number=number) as att:
                if att.refused is None and mmeta is not None:
                    size = self.s.chunk_into(att, chunks, mmeta.size)
            once = decide([att.result()], strategy, RetryPolicy(times=0, interval=0, on_change=False))
            assert isinstance(once, FileOutcome)  # no retries allowed: always final
            reads.append((mmeta, once, chunks, size))
        after = member_states([w.orig, *watch])
        w.attempts.append(number)
        fits, why = group_verdict(names, [r[1] for r in reads], before, after)
        policy = self.s.opt.retry
        retry = strategy in STRICT or policy.on_change
        if not fits and retry and number < policy.max_attempts:
            self.s.queue.push(w, time.monotonic() + policy.interval)
            self.s.sink(FileRetryScheduled(os.fsdecode(w.orig), number, policy.interval, "group-changed"))
            return
        writers = tuple(dict.fromkeys(x for r in reads for x in r[1].writers))
        for m, (mmeta, outcome, chunks, size) in zip(members, reads, strict=True):
            final = outcome if fits else torn_outcome(outcome, why, number, writers)
            final = dataclasses.replace(final, attempts=number)
            if mmeta is None and final.classification is not Classification.FAILED:
                final = dataclasses.replace(final, classification=Classification.FAILED)
            self.s.settle(m, mmeta, final, chunks, size)
