"""BackupSession: sources → snapshot, with the open-file strategy applied to every file.

Data flow (one session)::

    snapshots.SnapshotSession ─ view per source (or live)
    fs.list_dir / read_meta / Selector ─ what to save, in sorted order
    openfiles.OpenFiles.attempt ─ open + guard + read (main thread: leases signal it)
    pyfastcdc ─ chunk boundaries          ┐
    worker threads: repo.save_blob        ┘ hash, compress, encrypt, pack
    TreeBuilder ─ seals directories when their last child is final
    openfiles.decide ─ retry later (RetryQueue) or final FileOutcome
    repo.flush + save_snapshot

Files waiting for a retry never stall the walk: they keep a slot open in their
directory and the session polls the retry queue between files.
"""

from __future__ import annotations

import dataclasses
import getpass
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pyfastcdc import FastCDC

from shadowvault import __version__
from shadowvault.config import DatabaseServer
from shadowvault.errors import FatalError, SnapshotError
from shadowvault.fs import (
    ExcludeMatcher,
    FileMeta,
    Selector,
    default_excludes,
    devices_of,
    list_dir,
    read_meta,
    runtime_excluded_paths,
)
from shadowvault.openfiles import (
    Classification,
    FileOutcome,
    OpenFiles,
    Reason,
    Retry,
    RetryPolicy,
    RetryQueue,
    Strategy,
    decide,
)
from shadowvault.repo import BlobType, Node, Repository, Snapshot
from shadowvault.snapshots import DEFAULT_PREFIX, SnapshotMode, SnapshotSession, SnapshotView

from .dbcapture import DEFAULT_BUSY_TIMEOUT, DatabaseCapture
from .events import (
    EventSink,
    FileDone,
    FileRetryScheduled,
    Progress,
    SessionSummary,
    Warning_,
)
from .hotbackup.dumps import DatabaseDumps, DumpResult, virtual_dir
from .housekeeping import tidy_temp_files
from .nodes import node_from_meta, node_outcome, unchanged
from .parent import choose_parent, indexed_tree
from .readahead import ReadAhead
from .summary import Counts, exit_code
from .tree_builder import PendingDir, PendingFile, TreeBuilder

MIN_CHUNK = 512 * 1024
AVG_CHUNK = 1024 * 1024
MAX_CHUNK = 8 * 1024 * 1024
# Blobs queued for the workers, bounded in bytes (memory: ~16 large chunks) and in number. A
# count alone starved the workers on small files (16 blobs of a few KiB drain in no time while
# the main thread waits on the disk for the next file).
_IN_FLIGHT_BYTES = 16 * 1024 * 1024
_IN_FLIGHT_BLOBS = 512
_PROGRESS_EVERY = 0.25
_CHECKPOINT_PACKS = 8
# Names the snapshot providers give their snapshot and clone work directories.
_INTERNAL_PREFIX = f".{DEFAULT_PREFIX}-".encode()
_CHECKPOINT_SECONDS = 120.0


@dataclass(frozen=True)
class StopRequest:
    """Why a session should stop early and keep what it saved (``stop_at`` or the daemon's SIGTERM)."""

    kind: Literal["deadline", "interrupted"]
    message: str


@dataclass
class BackupOptions:
    """Everything a backup session needs besides the repository (engine vocabulary)."""

    sources: list[str]
    strategy: Strategy = Strategy.TRY_DENY_WRITE
    retry: RetryPolicy = field(default_factory=lambda: RetryPolicy(times=0, interval=0, on_change=False))
    excludes: list[str] = field(default_factory=list)
    exclude_if_present: list[str] = field(default_factory=lambda: ["CACHEDIR.TAG"])
    use_default_excludes: bool = True
    one_file_system: bool = False
    tags: list[str] = field(default_factory=list)
    host: str | None = None
    force: bool = False
    parent: str | None = None
    snapshot_mode: SnapshotMode = SnapshotMode.OFF
    pre_snapshot: str | None = None
    post_snapshot: str | None = None
    stop_on_errors: int = 0
    set_name: str | None = None
    excluded_paths: list[str] = field(default_factory=list)  # the repository, our state dir
    workers: int = 0  # 0: one per CPU
    # Asked between files: a request ends the walk, files waiting for a retry are given up and
    # what was saved is committed as a snapshot tagged "partial" (the next run's parent).
    stop_when: Callable[[], StopRequest | None] | None = None
    # Database servers dumped into this snapshot, and those other sets of the run dump (whose
    # live data directories are left out of this set's sources too).
    databases: list[DatabaseServer] = field(default_factory=list)
    run_databases: list[DatabaseServer] = field(default_factory=list)
    # SQLite database groups (engine/dbcapture.py): copy databases in use through SQLite;
    # a `sqlite` set copies every listed database that way and quick_checks the copy.
    sqlite_aware: bool = True
    sqlite_set: bool = False
    sqlite_busy_timeout: float = DEFAULT_BUSY_TIMEOUT
    state_dir: str | None = None  # where database copies are made (0600 files, deleted after)


@dataclass
class BackupResult:
    """What a finished session reports: the snapshot (if written), counts and exit code."""

    snapshot_id: str | None
    counts: Counts
    exit_code: int
    outcomes: list[dict[str, Any]]
    partial: bool
    stop: StopRequest | None = None


@dataclass
class _DirFrame:
    """A directory being walked: its pending tree, paths, snapshot view and the names left."""

    d: PendingDir
    orig: bytes
    read_path: bytes
    view: SnapshotView | None
    names: Iterator[bytes]


@dataclass
class _Waiting:
    """A file waiting in the retry queue."""

    dir: PendingDir
    slot: int
    orig: bytes
    read_path: bytes
    view: SnapshotView | None
    attempts: list[Any]
    in_parent: bool = False  # the parent snapshot had this path: "modified", not "new" (-v)
    kind: str = "file"  # "sqlite": copied through SQLite; "group": a database read with its companions
    members: list[_Waiting] = field(default_factory=list)  # a group's companions
    plain_only: bool = False  # starts with the SQLite header, but SQLite cannot read it


def _abs(p: str) -> str:
    return os.path.normpath(os.path.abspath(os.path.expanduser(p)))


class BackupSession:
    """One backup run into ``repo``; emits events to ``sink``; ``run()`` returns a ``BackupResult``."""

    def __init__(self, repo: Repository, options: BackupOptions, sink: EventSink) -> None:
        self.repo = repo
        self.opt = options
        self.sink = sink
        self.counts = Counts()
        self.outcomes: list[dict[str, Any]] = []
        self.queue: RetryQueue[_Waiting] = RetryQueue()
        self.builder = TreeBuilder(repo.save_tree)
        self._stopping = False
        self.stop: StopRequest | None = None
        self._last_progress = 0.0
        self._last_checkpoint = time.monotonic()
        self._inflight: deque[tuple[Future[bytes], int]] = deque()
        self._inflight_bytes = 0
        # Listed directories whose tree waits for its files' blobs (oldest first), with the
        # last future each waits for: sealing them blocks only at the end or when it is cheap.
        self._sealing: deque[tuple[PendingDir, Future[bytes]]] = deque()
        self._chunker = FastCDC(AVG_CHUNK, min_size=MIN_CHUNK, max_size=MAX_CHUNK)
        self._buf = bytearray(MIN_CHUNK)
        # Blobs and bytes added, updated by the worker threads (`+=` is not atomic across threads).
        self._added = [0, 0]
        self._added_lock = threading.Lock()
        self.sources = sorted({_abs(s) for s in options.sources})
        self.paths = sorted(set(self.sources) | {virtual_dir(d) for d in options.databases})
        excludes = list(options.excludes)
        if options.use_default_excludes:
            excludes = self._builtin_excludes() + excludes
        self.matcher = ExcludeMatcher(excludes)
        self.dbs = DatabaseCapture(self)

    def _builtin_excludes(self) -> list[str]:
        """The built-in list, minus patterns that would exclude a source the user named.

        Backing up ``/tmp/build`` on purpose must work even though ``/tmp/*`` is excluded by
        default when backing up ``/``.
        """
        named = [os.fsencode(s) for s in self.sources]
        return [p for p in default_excludes() if not any(ExcludeMatcher([p]).matches(s, True) for s in named)]

    # ----- public -----------------------------------------------------------------------------

    def run(self) -> BackupResult:
        """Back up every source; write the snapshot unless nothing could be read at all."""
        start = time.time()
        for src in self.sources:
            if not os.path.lexists(src):
                raise FatalError(f"source {src} does not exist: check the path")
        for lock_id in self.repo.remove_stale_locks():
            self._warn(f"removed stale lock {lock_id[:8]} left by a process that no longer runs")
        tidy_temp_files(self.repo, self._warn)
        parent_id, parent_tree = self._parent_tree()
        parent_root = self._children(parent_tree)
        workers = self.opt.workers or max(2, os.cpu_count() or 2)
        with ExitStack() as stack:
            self.pool = stack.enter_context(ThreadPoolExecutor(workers, thread_name_prefix="blob"))
            self.readahead = ReadAhead()
            stack.callback(self.readahead.close)
            snaps = stack.enter_context(
                SnapshotSession(
                    self.opt.snapshot_mode,
                    [Path(s) for s in self.sources],
                    pre_snapshot=self.opt.pre_snapshot,
                    post_snapshot=self.opt.post_snapshot,
                    on_message=self._warn,
                )
            )
            self._snaps = snaps
            self.of = OpenFiles(on_warning=self._warn)
            stack.callback(self.of.close)
            stack.callback(self.dbs.close)
            root = PendingDir(
                meta=None, parent=None, slot=0, parent_nodes=parent_root, parent_tree=parent_tree
            )
            self._dump_databases(root)
            self._backup_sources(root, snaps)
            self._drain_retries()
            self._wait_inflight(0)
            self._seal_ready(block=True)
            if self.builder.root_id is None:
                raise FatalError("backup produced no tree: nothing was saved")
            self.repo.flush()
        snap = Snapshot(
            time=int(start * 1e9),
            tree=self.builder.root_id,
            paths=list(self.paths),
            hostname=self.opt.host or socket.gethostname(),
            username=getpass.getuser(),
            uid=os.getuid(),
            gid=os.getgid(),
            excludes=list(self.opt.excludes),
            tags=list(self.opt.tags) + (["partial"] if self._stopping else []),
            parent=parent_id,
            original=None,
            program_version=f"shadowvault {__version__}",
            extra={"shadowvault": self._snapshot_extra()},
        )
        snapshot_id = self.repo.save_snapshot(snap)
        code = exit_code(self.counts, snapshot_written=True)
        self.sink(
            SessionSummary(
                snapshot_id=snapshot_id,
                files_ok=self.counts.ok,
                files_suspect=self.counts.suspect,
                files_failed=self.counts.failed,
                files_unchanged=self.counts.unchanged,
                files_read=self.counts.files_read,
                bytes_read=self.counts.bytes_read,
                data_blobs_added=self._added[0],
                bytes_added=self._added[1],
                data_packs_written=self.repo.data_packs_written,
                duration=time.time() - start,
                exit_code=code,
                partial=self._stopping,
            )
        )
        self.counts.data_blobs_added, self.counts.bytes_added = self._added
        return BackupResult(snapshot_id, self.counts, code, self.outcomes, self._stopping, self.stop)

    # ----- parent snapshot ----------------------------------------------------------------------

    def _parent_tree(self) -> tuple[str | None, bytes | None]:
        """The parent snapshot (latest of this host and paths, or --parent) and its root tree."""
        if self.opt.force:
            return None, None
        host = self.opt.host or socket.gethostname()
        return choose_parent(
            repo=self.repo, host=host, sources=self.paths, ref=self.opt.parent, warn=self._warn
        )

    def _children(self, tree_id: bytes | None) -> dict[str, Node] | None:
        if tree_id is None:
            return None
        indexed_tree(self.repo, tree_id)  # written by a session that finished after our index load
        return {n.name: n for n in self.repo.load_tree(tree_id).nodes}

    # ----- database dumps (engine.hotbackup) ----------------------------------------------------

    def _dump_databases(self, root: PendingDir) -> None:
        """Dump the set's servers into ``/.shadowvault/…`` and leave their live data directories
        out of the sources (the dump is their consistent copy)."""
        if not (self.opt.databases or (self.opt.run_databases and self.sources)):
            return
        with DatabaseDumps(
            self.opt.databases,
            chunker=self._chunker,
            submit=self._submit,
            warn=self._warn,
            progress=self._maybe_progress,
        ) as dumps:
            excluded = dumps.exclusions(self.sources, self.opt.run_databases)
            self.opt = dataclasses.replace(self.opt, excluded_paths=[*self.opt.excluded_paths, *excluded])
            for result in dumps.dump_into(root, self.builder):
                self._record_dump(result)

    def _record_dump(self, r: DumpResult) -> None:
        data = r.outcome()
        self.counts.add_class(r.classification)
        self.counts.files_read += 1
        self.counts.bytes_read += r.size
        self.outcomes.append({"path": r.path, **data})  # ok dumps too: report shows size and version
        self.sink(FileDone(r.path, r.size, data, reused=False))

    # ----- walking ------------------------------------------------------------------------------

    def _backup_sources(self, root: PendingDir, snaps: SnapshotSession) -> None:
        """Lay out the intermediate directories of every source, then walk each source."""
        trie: dict[str, Any] = {}
        for src in self.sources:
            node = trie
            for part in src.strip("/").split("/"):
                node = node.setdefault(part, {})
            node.clear()  # a source covers everything below it
            node[""] = src
        self._lay_out(root, trie, "", snaps)
        root.listed = True
        self.builder.try_seal(root)

    def _lay_out(self, d: PendingDir, trie: dict[str, Any], prefix: str, snaps: SnapshotSession) -> None:
        for name in sorted(trie, key=os.fsencode):
            path = f"{prefix}/{name}"
            sub = trie[name]
            parent_node = (d.parent_nodes or {}).get(name)
            if "" in sub:
                # A source given as a symlink is stored as the symlink, as restic does, with or
                # without a snapshot (the view would walk the directory it points to).
                view = None if os.path.islink(path) else snaps.view(Path(path))
                read_path = os.fsencode(path)
                if view is not None:
                    read_path = os.fsencode(str(view.walk_root))
                    # --one-file-system compares against the snapshot's own device number.
                    self.selector.root_devices.add(os.lstat(read_path).st_dev)
                below = self._backup_entry(
                    d, name.encode(), os.fsencode(path), read_path, parent_node, view, True
                )
                if below is not None:
                    self._walk_dir(*below, is_source=True)
                continue
            meta = read_meta(os.fsencode(path))
            child = self._child_dir(d, meta, parent_node)
            self._lay_out(child, sub, path, snaps)
            child.listed = True
            self.builder.try_seal(child)

    def _child_dir(self, d: PendingDir, meta: FileMeta, parent_node: Node | None) -> PendingDir:
        """A pending directory under ``d``, knowing its counterpart in the parent snapshot."""
        old_tree = parent_node.subtree if parent_node is not None and parent_node.type == "dir" else None
        return PendingDir(
            meta=meta,
            parent=d,
            slot=d.reserve(),
            parent_nodes=self._children(old_tree),
            parent_tree=old_tree,
        )

    def _walk_dir(
        self, d: PendingDir, orig: bytes, read_path: bytes, view: SnapshotView | None, is_source: bool = False
    ) -> None:
        """Back up the directory ``d`` and everything below it.

        Iterative, with one frame per open directory on an explicit stack: a tree thousands of levels
        deep must not exhaust Python's recursion limit (restic's walk has no such limit either).
        """
        first = self._open_dir(d, orig, read_path, view, is_source)
        stack = [first] if first is not None else []
        while stack:
            frame = stack[-1]
            name = next(frame.names, None)
            stop = self._stopping or (self.opt.stop_when is not None and self._stop_requested())
            if name is None or stop:
                stack.pop()
                frame.d.listed = True
                self._seal_later(frame.d)
                continue
            self._poll_retries()
            self._seal_ready()
            parent_node = (frame.d.parent_nodes or {}).get(os.fsdecode(name))
            orig, read_path = frame.orig + b"/" + name, frame.read_path + b"/" + name
            below = self._backup_entry(frame.d, name, orig, read_path, parent_node, frame.view, False)
            frame_below = self._open_dir(*below) if below is not None else None
            if frame_below is not None:
                stack.append(frame_below)

    def _open_dir(
        self, d: PendingDir, orig: bytes, read_path: bytes, view: SnapshotView | None, is_source: bool = False
    ) -> _DirFrame | None:
        """List a directory about to be walked (and start reading ahead in it); None when it cannot
        be listed (then it is a failed entry)."""
        try:
            names = list_dir(read_path)
        except OSError as e:
            self._dir_failed(d, orig, e, is_source)
            return None
        if self.opt.force or d.parent_nodes is None:
            self.readahead.directory(read_path, names)
        if view is None:
            self.dbs.listed(orig, names)
        return _DirFrame(d, orig, read_path, view, iter(names))

    def _backup_entry(
        self,
        d: PendingDir,
        name: bytes,
        orig: bytes,
        read_path: bytes,
        parent_node: Node | None,
        view: SnapshotView | None,
        is_source: bool,
    ) -> tuple[PendingDir, bytes, bytes, SnapshotView | None] | None:
        """Back up one entry of ``d``; a directory to descend into is returned, not walked here."""
        try:
            meta = read_meta(read_path)
        except FileNotFoundError:
            return None  # vanished between listing and lstat: it is simply not part of this snapshot
        except OSError as e:
            self._file_failed_early(orig, "io-error", f"cannot read metadata: {e.strerror}")
            return None
        meta = _renamed(meta, name)
        if not is_source and (not self.selector.selected(orig, meta) or self._internal(orig, name)):
            return None
        if meta.kind == "dir":
            if view is not None and not is_source and not self.opt.one_file_system and _mounted_below(orig):
                meta, read_path, view = self._live_below_snapshot(orig, name, meta), orig, None
            child = self._child_dir(d, meta, parent_node)
            if is_source or self.selector.descend(orig, meta):
                return child, orig, read_path, view
            # A mount point under --one-file-system: recorded, not entered (as restic does).
            child.listed = True
            self.builder.try_seal(child)
        elif meta.kind == "file":
            self._backup_file(d, orig, read_path, meta, parent_node, view)
        else:
            d.add(node_from_meta(meta))
        return None

    def _live_below_snapshot(self, orig: bytes, name: bytes, snap_meta: FileMeta) -> FileMeta:
        """A file system or nested subvolume below a snapshotted source is an empty directory in
        the snapshot: read it live under ``auto``; ``required`` promised snapshots only."""
        where = os.fsdecode(orig)
        if self.opt.snapshot_mode is SnapshotMode.REQUIRED:
            raise FatalError(
                f"{where} is a separate file system or subvolume below a snapshotted source and is not in "
                "the snapshot: add it as a source of its own, exclude it, or use snapshot=auto"
            )
        self._warn(
            f"{where} is a separate file system or subvolume not covered by the snapshot; reading it live"
        )
        try:
            return _renamed(read_meta(orig), name)
        except OSError:
            return snap_meta

    def _internal(self, orig: bytes, name: bytes) -> bool:
        """Snapshot and clone work directories (this session's or another's) are never backed up."""
        if name.startswith(_INTERNAL_PREFIX):
            return True
        paths = self._snaps.internal_paths
        return bool(paths) and any(orig == os.fsencode(str(p)) for p in paths)

    @property
    def selector(self) -> Selector:
        sel = getattr(self, "_selector", None)
        if sel is None:
            sel = Selector(
                self.matcher,
                self.opt.exclude_if_present,
                self.opt.one_file_system,
                devices_of(self.sources),
                runtime_excluded_paths(*self.opt.excluded_paths),
                detect_swap=self.opt.use_default_excludes,
            )
            self._selector = sel
        return sel

    # ----- files --------------------------------------------------------------------------------

    def _backup_file(
        self,
        d: PendingDir,
        orig: bytes,
        read_path: bytes,
        meta: FileMeta,
        parent_node: Node | None,
        view: SnapshotView | None,
    ) -> None:
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
            self.counts.unchanged += 1
            self.counts.add_class("ok")
            self.sink(FileDone(os.fsdecode(orig), meta.size, {"class": "ok"}, reused=True))
            return
        waiting = _Waiting(d, d.reserve(), orig, read_path, view, [], parent_node is not None)
        if view is None and self.dbs.before_read(waiting, meta):
            return
        self._attempt(waiting, meta)

    # Entry points for engine/dbcapture.py (database groups), which reads and settles through us.

    def new_waiting(self, d: PendingDir, orig: bytes, read_path: bytes) -> _Waiting:
        """A live file of directory ``d`` with a slot of its own (a database group's member)."""
        return _Waiting(d, d.reserve(), orig, read_path, None, [])

    def attempt_file(self, w: _Waiting, meta: FileMeta) -> None:
        """Read ``w`` as a plain file under the set's strategy."""
        self._attempt(w, meta)

    def chunk_into(self, reader: Any, chunks: list[Future[bytes]], expected: int) -> int:
        """Read ``reader`` (``readinto``) to its end into blobs; returns the bytes read."""
        size = self._chunk(reader, chunks, expected)
        assert size is not None  # without a probe the read never stops early
        return size

    def settle(
        self, w: _Waiting, meta: FileMeta | None, outcome: FileOutcome, chunks: list[Future[bytes]], size: int
    ) -> None:
        """The final outcome of ``w`` (``meta`` None only for a failed file)."""
        self._settle(w, meta, outcome, chunks, size)

    def warn(self, message: str) -> None:
        """A session warning (log and activity log)."""
        self._warn(message)

    def _attempt(self, w: _Waiting, meta: FileMeta) -> None:
        """One read attempt; then settle the file or put it back in the retry queue."""
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
            chunks: list[Future[bytes]] = []
            size: int | None = 0
            with self.of.attempt(path, strategy, number=len(w.attempts) + 1) as att:
                if att.refused is None:
                    probe = (lambda head: self.dbs.probe(w, att, head)) if live else None
                    size = self._chunk(att, chunks, meta.size, probe)
                elif live:
                    take_over = self.dbs.refused(w, att)
            attempt = att.result()
        if size is None or take_over or (live and self.dbs.after_read(w)):
            self.dbs.take_over(w, meta)  # a SQLite database in use: saved as one unit
            return
        w.attempts.append(attempt)
        step = decide(w.attempts, strategy, self.opt.retry)
        if isinstance(step, Retry):
            self.queue.push(w, time.monotonic() + step.after)
            self.sink(FileRetryScheduled(os.fsdecode(w.orig), len(w.attempts), step.after, step.reason.value))
            return
        self._settle(w, meta, step, chunks, size)

    def _path_to_read(self, w: _Waiting, stack: ExitStack) -> bytes | None:
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
                self._file_failed_early(w.orig, "snapshot-failed", f"could not be read from a snapshot: {e}")
                return None
            self._warn(f"{os.fsdecode(w.orig)}: {e}; reading the live file with the open-file strategy")
            w.view = None
            w.read_path = w.orig
            return w.read_path

    def _settle(
        self, w: _Waiting, meta: FileMeta | None, outcome: FileOutcome, chunks: list[Future[bytes]], size: int
    ) -> None:
        if outcome.reason is Reason.VANISHED:
            self._vanished(w)
            return
        data = outcome.to_json()
        cls = outcome.classification
        path = os.fsdecode(w.orig)
        self.counts.add_class(cls.value)
        self.counts.files_read += 1
        self.counts.bytes_read += size
        via_sqlite = outcome.reason is Reason.SQLITE_BACKUP
        if cls is not Classification.OK or outcome.writers or via_sqlite:
            self.outcomes.append({"path": path, **data})
        if cls is Classification.FAILED or meta is None:
            self.builder.settle(w.dir, w.slot, None)
        else:
            # A database copied through SQLite says so on its node (ls --long), which also keeps
            # the next session from taking it unchanged: its WAL may hold newer commits.
            stored = data if cls is Classification.SUSPECT or via_sqlite else None
            self.builder.settle(w.dir, w.slot, PendingFile(meta, size, chunks, stored))
        self.sink(FileDone(path, size, data, reused=False, in_parent=w.in_parent))
        if (
            cls is Classification.FAILED
            and self.opt.stop_on_errors
            and (self.counts.failed >= self.opt.stop_on_errors)
        ):
            self._stopping = True
            self._warn(f"stopping after {self.counts.failed} failed files (stop_on_errors)")

    def _vanished(self, w: _Waiting) -> None:
        """Deleted between the directory listing and the read (temp files, journals): nothing is
        lost, so it is left out with a warning instead of counting as a failed file (as restic)."""
        self.builder.settle(w.dir, w.slot, None)
        self._warn(f"{os.fsdecode(w.orig)} was deleted before it could be read; not in this snapshot")

    def _dir_failed(self, d: PendingDir, orig: bytes, error: OSError, is_source: bool) -> None:
        """A directory that cannot be listed is a failed entry, left out of the tree like a failed
        file: the snapshot does not hold what was asked for, so it must not pass as complete. A
        source that cannot be listed fails the whole set (an empty snapshot would say "ok")."""
        where = os.fsdecode(orig)
        assert d.parent is not None
        self.builder.settle(d.parent, d.slot, None)
        if isinstance(error, FileNotFoundError) and not is_source:
            # Deleted between its parent's listing and its own: nothing is lost (as for files).
            self._warn(f"{where} was deleted before it could be read; not in this snapshot")
            return
        reason = Reason.PERMISSION_DENIED if isinstance(error, PermissionError) else Reason.IO_ERROR
        self._file_failed_early(orig, reason.value, f"cannot list directory: {error.strerror}")
        if is_source:
            raise FatalError(
                f"cannot read source {where}: {error.strerror}: run as a user who may read it, "
                "or remove it from the sources"
            )

    def _file_failed_early(self, orig: bytes, reason: str, message: str) -> None:
        path = os.fsdecode(orig)
        data = {"class": "failed", "reason": reason, "message": message, "attempts": 0, "writers": []}
        self.counts.add_class("failed")
        self.outcomes.append({"path": path, **data})
        self.sink(FileDone(path, 0, data, reused=False))

    def _chunk(
        self,
        att: Any,
        chunks: list[Future[bytes]],
        expected: int,
        probe: Callable[[memoryview], bool] | None = None,
    ) -> int | None:
        """Read the attempt's file into blobs; returns the number of bytes read.

        ``probe`` sees the first block before anything is saved (the SQLite header check uses
        bytes read anyway); when it returns True the read stops there and None is returned.
        """
        if expected < MIN_CHUNK or probe is not None:
            # One chunk at most: skip the chunker, read straight into a reusable buffer.
            view = memoryview(self._buf)
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
                chunks.append(self._submit(bytes(view[:n])))
            return n
        return self._chunk_stream(att, chunks, b"")

    def _chunk_stream(self, att: Any, chunks: list[Future[bytes]], head: bytes) -> int:
        total = 0
        reader = att if not head else _Prefixed(head, att)
        for chunk in self._chunker.cut_stream(reader):
            chunks.append(self._submit(bytes(chunk.data)))
            total += chunk.length
            self._maybe_progress()
        return total

    def _maybe_checkpoint(self, *, idle: bool = False) -> None:
        """Index uploaded packs every few packs or minutes (or whenever the session is only
        waiting for retries), so a killed session's data is reused by the next one."""
        now = time.monotonic()
        pending = self.repo.unindexed_packs()
        due = idle or pending >= _CHECKPOINT_PACKS or now - self._last_checkpoint >= _CHECKPOINT_SECONDS
        if pending and due:
            self.repo.checkpoint()
            self._last_checkpoint = now

    def _submit(self, data: bytes) -> Future[bytes]:
        self._wait_inflight(_IN_FLIGHT_BYTES - len(data))
        self._maybe_checkpoint()
        fut = self.pool.submit(self._save, data)
        self._inflight.append((fut, len(data)))
        self._inflight_bytes += len(data)
        return fut

    def _save(self, data: bytes) -> bytes:
        blob_id, added = self.repo.save_blob(BlobType.DATA, data)
        if added:
            with self._added_lock:
                self._added[0] += 1
                self._added[1] += len(data)
        return blob_id

    def _wait_inflight(self, max_bytes: int) -> None:
        """Collect finished blobs (raising a worker's error); block while over the budget."""
        q = self._inflight
        while q and (self._inflight_bytes > max_bytes or len(q) >= _IN_FLIGHT_BLOBS or q[0][0].done()):
            fut, size = q.popleft()
            self._inflight_bytes -= size
            fut.result()

    def _seal_later(self, d: PendingDir) -> None:
        """Seal ``d`` now if its files' blobs are saved, else once they are (``_seal_ready``).

        Sealing resolves every content future; doing it as soon as a directory is listed made
        the main thread wait for the workers at each directory and left them idle afterwards.
        Only a directory with no child left to settle is deferred: one still waiting for a retry
        or a subdirectory is sealed by that child's settling, never twice.
        """
        last = _last_future(d) if d.pending == 0 else None
        if last is None or last.done():
            self.builder.try_seal(d)
        else:
            self._sealing.append((d, last))

    def _seal_ready(self, *, block: bool = False) -> None:
        """Seal deferred directories in order while their blobs are saved (all of them if ``block``)."""
        q = self._sealing
        while q and (block or q[0][1].done()):
            self.builder.try_seal(q.popleft()[0])

    # ----- retries ------------------------------------------------------------------------------

    def _poll_retries(self) -> None:
        if not self.queue:  # asked before every entry; almost always empty
            return
        for w in self.queue.pop_due(time.monotonic()):
            self._retry(w)

    def _retry(self, w: _Waiting) -> None:
        try:
            meta = _renamed(read_meta(w.read_path), os.path.basename(w.orig))
        except FileNotFoundError:
            self._vanished(w)
            return
        except OSError as e:
            self.builder.settle(w.dir, w.slot, None)
            self._file_failed_early(w.orig, "io-error", f"cannot read metadata: {e.strerror}")
            return
        self._attempt(w, meta)

    def _stop_requested(self) -> bool:
        req = self.opt.stop_when() if self.opt.stop_when is not None else None
        if req is not None:
            self._stopping, self.stop = True, req
            self._warn(req.message)
        return req is not None

    def _drain_retries(self) -> None:
        while len(self.queue):
            if self.stop is not None or (self.opt.stop_when is not None and self._stop_requested()):
                # Waiting out retry intervals would defeat stop_at: those files are not saved.
                for w in self.queue.pop_due(float("inf")):
                    self.builder.settle(w.dir, w.slot, None)
                    self._file_failed_early(w.orig, "stopped", "the run stopped before this file's retry")
                return
            due = self.queue.next_due()
            if due is not None:
                delay = due - time.monotonic()
                if delay > 0:
                    self._maybe_checkpoint(idle=True)
                    time.sleep(min(delay, 0.5))
            self._poll_retries()

    # ----- reporting ----------------------------------------------------------------------------

    def _warn(self, message: str) -> None:
        self.sink(Warning_(message))

    def _maybe_progress(self) -> None:
        now = time.monotonic()
        if now - self._last_progress >= _PROGRESS_EVERY:
            self._last_progress = now
            self.sink(
                Progress(
                    self.counts.ok + self.counts.suspect + self.counts.failed,
                    self.counts.bytes_read,
                    0,
                    "",
                )
            )

    def _snapshot_extra(self) -> dict[str, Any]:
        return {
            "version": 1,
            "summary": {
                "ok": self.counts.ok,
                "suspect": self.counts.suspect,
                "failed": self.counts.failed,
            },
            "partial": self._stopping,
            "set": self.opt.set_name,
            "strategy": self.opt.strategy.value,
            "outcomes": self.outcomes,
        }


def _last_future(d: PendingDir) -> Future[bytes] | None:
    """The newest blob future among ``d``'s files (the pool runs them in order, so when it is
    done the others practically are too), or None when nothing is pending."""
    for slot in reversed(d.slots):
        if isinstance(slot, PendingFile):
            for c in reversed(slot.chunks):
                if isinstance(c, Future):
                    return c
    return None


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


def _mounted_below(orig: bytes) -> bool:
    """True when live directory ``orig`` is on another device than its parent (mount or subvolume)."""
    try:
        return os.lstat(orig).st_dev != os.lstat(os.path.dirname(orig)).st_dev
    except OSError:
        return False


def _renamed(meta: FileMeta, name: bytes) -> FileMeta:
    """The walk reads metadata through snapshot paths; the node keeps the original name."""
    if meta.name == name:
        return meta
    return dataclasses.replace(meta, name=name)
