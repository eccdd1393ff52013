"""The backup coordinator: sources → snapshot, through a pipeline with one job per module.

Stages (restic's archiver: scanner, file saver, blob saver, tree saver; see docs/architecture.md)::

    engine.walker     Walker       ─ sources laid out, iterative walk, selection, parent nodes
    engine.filesaver  FileSaver    ─ unchanged reuse; open-file attempt, retries, settling
    engine.dbcapture  DatabaseCapture ─ SQLite groups, asked by the file stage
    engine.blobstage  BlobStage    ─ FastCDC chunks → worker threads: repo.save_blob
    engine.treesaver  TreeSaver    ─ directories sealed bottom-up once their blobs are saved
    engine.counters   SessionCounters ─ every count, progress and summary event
    engine.hotbackup  DatabaseDumps ─ database servers dumped into /.shadowvault/… first

``BackupSession`` wires them together for one run: parent snapshot, housekeeping, database
dumps, the walk, the retries left, flush and the snapshot. It depends on the narrow repository
protocol ``engine.ports.BackupRepo``, not on the concrete ``Repository``.
"""

from __future__ import annotations

import dataclasses
import getpass
import os
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from shadowvault.config import DatabaseServer
from shadowvault.errors import FatalError
from shadowvault.openfiles import RetryPolicy, Strategy
from shadowvault.repo import Snapshot
from shadowvault.snapshots import SnapshotMode, SnapshotSession
from shadowvault.version import __version__

from .blobstage import BlobStage
from .collector import CollectorPause
from .counters import SessionCounters
from .dbcapture import DEFAULT_BUSY_TIMEOUT
from .events import EventSink, Warning_
from .filesaver import FileSaver
from .hotbackup.dumps import DatabaseDumps, DumpResult, virtual_dir
from .housekeeping import tidy_temp_files
from .outcomes import FileRecord
from .parent import choose_parent
from .ports import BackupRepo
from .prescan import Prescan
from .readahead import ReadAhead
from .stopping import StopRequest, StopState
from .summary import Counts
from .tree_builder import PendingDir, TreeBuilder
from .treesaver import TreeSaver
from .walker import Walker, build_selector, internal_name, parent_children

__all__ = ["BackupOptions", "BackupResult", "BackupSession", "StopRequest"]


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
    read_concurrency: int = 1  # files read in parallel (1: in the walking thread only)
    # Forked reader processes for the small files of a first (or --force) backup (engine.procread);
    # None: one per CPU (at most 4) when there are two or more, 0: none.
    read_processes: int | None = None
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
    # Every unchanged file reported by name (-vv, a detailed activity log): no directory is then
    # taken whole from the parent snapshot by the verifier processes (engine.prescan).
    unchanged_by_name: bool = False
    # Verifier processes of an incremental backup (engine.prescan); None: one per CPU when there
    # are two or more, 0: none.
    prescan_processes: int | None = None


@dataclass
class BackupResult:
    """What a finished session reports: the snapshot (if written), counts and exit code."""

    snapshot_id: str | None
    counts: Counts
    exit_code: int
    outcomes: list[FileRecord]  # every non-ok outcome (and ok dumps and SQLite copies)
    partial: bool
    stop: StopRequest | None = None


def _abs(p: str) -> str:
    return os.path.normpath(os.path.abspath(os.path.expanduser(p)))


class BackupSession:
    """One backup run into ``repo``; emits events to ``sink``; ``run()`` returns a ``BackupResult``."""

    def __init__(self, repo: BackupRepo, options: BackupOptions, sink: EventSink) -> None:
        self.repo = repo
        self.opt = options
        self.counters = SessionCounters(sink)
        # Every event leaves through the counters, after the unchanged files walked before it.
        self.sink: EventSink = self.counters.sink
        self.stop = StopState(options.stop_when, self._warn)
        self.builder = TreeBuilder(repo.save_tree)
        self.trees = TreeSaver(self.builder)
        self.sources = sorted({_abs(s) for s in options.sources})
        self.paths = sorted(set(self.sources) | {virtual_dir(d) for d in options.databases})

    def run(self) -> BackupResult:
        """Back up every source; write the snapshot unless nothing could be read at all."""
        try:
            return self._run()
        finally:
            self.counters.flush()  # a session that fails still reports the unchanged files it walked

    def _run(self) -> BackupResult:
        start = time.time()
        for src in self.sources:
            if not os.path.lexists(src):
                raise FatalError(f"source {src} does not exist: check the path")
        for lock_id in self.repo.remove_stale_locks():
            self._warn(f"removed stale lock {lock_id[:8]} left by a process that no longer runs")
        tidy_temp_files(self.repo, self._warn)
        parent_id, parent_tree = self._parent_tree()
        parent_root = parent_children(self.repo, parent_tree)
        workers = self.opt.workers or max(2, os.cpu_count() or 2)
        with ExitStack() as stack:
            # First, so that reader processes fork with it frozen and it resumes last.
            collector = stack.enter_context(CollectorPause())
            prescan = self._prescan(parent_tree)  # forked before any thread starts, too
            if prescan is not None:
                stack.callback(prescan.close)
            pool = stack.enter_context(ThreadPoolExecutor(workers, thread_name_prefix="blob"))
            blobs = BlobStage(self.repo, pool, self.counters)
            readahead = ReadAhead()
            stack.callback(readahead.close)
            snaps = stack.enter_context(
                SnapshotSession(
                    self.opt.snapshot_mode,
                    [Path(s) for s in self.sources],
                    pre_snapshot=self.opt.pre_snapshot,
                    post_snapshot=self.opt.post_snapshot,
                    on_message=self._warn,
                )
            )
            files = FileSaver(
                self.repo,
                self.opt,
                self.sink,
                builder=self.builder,
                blobs=blobs,
                counters=self.counters,
                stop=self.stop,
                read_processes=self._read_processes(parent_tree),
            )
            stack.callback(files.close)
            root = PendingDir(
                meta=None, parent=None, slot=0, parent_nodes=parent_root, parent_tree=parent_tree
            )
            self._dump_databases(root, blobs)
            walker = Walker(
                self.repo,
                self.opt,
                self.sources,
                snaps=snaps,
                readahead=readahead,
                files=files,
                trees=self.trees,
                stop=self.stop,
                collector=collector,
                selector=None if prescan is None else prescan.selector,  # the verifiers' own rules
                prescan=prescan,
            )
            walker.backup_sources(root)
            files.drain_retries()
            blobs.wait_inflight(0)
            self.trees.seal_ready(block=True)
            if self.builder.root_id is None:
                raise FatalError("backup produced no tree: nothing was saved")
            self.repo.flush()
        partial = self.stop.stopping
        snap = Snapshot(
            time=int(start * 1e9),
            tree=self.builder.root_id,
            paths=list(self.paths),
            hostname=self.opt.host or socket.gethostname(),
            username=getpass.getuser(),
            uid=os.getuid(),
            gid=os.getgid(),
            excludes=list(self.opt.excludes),
            tags=list(self.opt.tags) + (["partial"] if partial else []),
            parent=parent_id,
            original=None,
            program_version=f"shadowvault {__version__}",
            extra={
                "shadowvault": self.counters.snapshot_extra(
                    partial=partial, set_name=self.opt.set_name, strategy=self.opt.strategy.value
                )
            },
        )
        snapshot_id = self.repo.save_snapshot(snap)
        code = self.counters.finish(
            snapshot_id, packs=self.repo.data_packs_written, duration=time.time() - start, partial=partial
        )
        c = self.counters
        return BackupResult(snapshot_id, c.counts, code, c.outcomes, partial, self.stop.request)

    def _prescan(self, parent_tree: bytes | None) -> Prescan | None:
        """Verifier processes for an incremental backup of live files in a local repository, when
        there are two or more CPUs (``engine.prescan`` says when else they are not used).

        Not with database dumps in the run: they add the live data directories to the exclusions
        (``_dump_databases``) once threads exist, and the verifiers must fork before any thread
        with the walk's final selection rules."""
        o = self.opt
        n = o.prescan_processes
        if n is None:
            cpus = os.cpu_count() or 1
            n = min(cpus, 4) if cpus >= 2 else 0
        if (
            n <= 0
            or parent_tree is None
            or o.force
            or o.sqlite_set
            or o.unchanged_by_name
            or o.snapshot_mode is not SnapshotMode.OFF
            or o.databases
            or o.run_databases
        ):
            return None
        trees = self.repo.forked_trees()
        if trees is None:
            return None
        return Prescan(n, trees, parent_tree, build_selector(o, self.sources), internal_name)

    def _read_processes(self, parent_tree: bytes | None) -> int:
        """Reader processes for this session: only when every file will be read (no parent tree,
        or --force); an incremental run reads few files and would only pay for the forks."""
        if parent_tree is not None and not self.opt.force:
            return 0
        n = self.opt.read_processes
        if n is None:
            cpus = len(os.sched_getaffinity(0))
            n = min(cpus, 4) if cpus >= 2 else 0
        return max(0, n)

    # ----- parent snapshot ----------------------------------------------------------------------

    def _parent_tree(self) -> tuple[str | None, bytes | None]:
        """The parent snapshot (latest of this host and paths, or --parent) and its root tree."""
        if self.opt.force:
            return None, None
        host = self.opt.host or socket.gethostname()
        return choose_parent(
            repo=self.repo, host=host, sources=self.paths, ref=self.opt.parent, warn=self._warn
        )

    # ----- database dumps (engine.hotbackup) ----------------------------------------------------

    def _dump_databases(self, root: PendingDir, blobs: BlobStage) -> None:
        """Dump the set's servers into ``/.shadowvault/…`` and leave their live data directories
        out of the sources (the dump is their consistent copy)."""
        if not (self.opt.databases or (self.opt.run_databases and self.sources)):
            return
        with DatabaseDumps(
            self.opt.databases,
            chunker=blobs.chunker,
            submit=blobs.submit,
            warn=self._warn,
            progress=self.counters.maybe_progress,
        ) as dumps:
            excluded = dumps.exclusions(self.sources, self.opt.run_databases)
            self.opt = dataclasses.replace(self.opt, excluded_paths=[*self.opt.excluded_paths, *excluded])
            for result in dumps.dump_into(root, self.builder):
                self._record_dump(result)

    def _record_dump(self, r: DumpResult) -> None:
        # ok dumps are listed too: the report shows their size and server version.
        self.counters.read(r.path, r.size, r.outcome(), keep=True)

    def _warn(self, message: str) -> None:
        self.sink(Warning_(message))
