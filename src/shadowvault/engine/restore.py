"""RestoreSession: a snapshot tree → files on disk, data and metadata.

Never overwrites a differing file unless asked (``overwrite``: ``never``, ``if-changed``,
``always``); an existing file that already matches the snapshot (size and mtime, or its content
with ``verify``) is left alone and counted as unchanged, so restoring onto an identical tree
succeeds. ``delete`` removes what the snapshot does not have; ``dry_run`` only counts. Only
directories that existed before the restore are looked at for existing entries: in a directory
the restore created itself every name is new, so the common case costs no extra lookups.

Like restic's restorer, the walk plans which blob goes to which file offsets, grouped by pack; worker
threads read the planned blobs of a pack in large ranges, verify and decode them
and write every copy of each blob with ``pwrite``. A pack's plan is handed to the
workers while the walk goes on, as soon as it holds about one read window (and
only at a file boundary, so every file in it is fully planned); blobs of that
pack planned later go to another task that reads their ranges then. A file is
created by the first worker that writes it and finished (length, metadata) by
whichever worker writes its last blob. Directory metadata is applied last,
deepest first, because creating children changes a directory's times. All-zero
blocks become holes, so sparse files stay sparse.

This module is the walk and the plan (selection, directories, special files, existing entries,
metadata); the worker side (reading a pack's planned blobs, writing, creating and finishing files)
is ``engine.restore_write.ContentWriter``, which ``RestoreSession`` extends.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from shadowvault.errors import FatalError, UsageError
from shadowvault.fs import ExcludeMatcher
from shadowvault.repo import BlobType, Node
from shadowvault.repo.files.pack import PackedBlob

from .collector import CollectorPause
from .diskfull import SpaceGuard
from .events import EventSink, Warning_
from .existing import existing_matches
from .nodes import node_outcome, posix_permissions
from .ports import RestoreRepo
from .restore_procs import WriterProcesses, start_writers
from .restore_write import CREATE_BATCH, TASK_BYTES, ContentWriter, FileJob, Placements

_FS_ENCODING = sys.getfilesystemencoding()
_FS_ERRORS = sys.getfilesystemencodeerrors()


@dataclass
class RestoreOptions:
    """What to restore and where."""

    target: str
    include: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    overwrite: str = "never"
    """never: keep a differing file (exit 3); if-changed: replace it; always: replace every file."""
    verify: bool = False
    """Decide "unchanged" by content (blob hashes) instead of size and mtime."""
    delete: bool = False
    dry_run: bool = False
    skip_suspect: bool = False
    only_suspect: bool = False
    workers: int = 0
    keep_going: bool = False  # on a full target: go on with what fits instead of stopping
    writer_processes: int = -1
    """Forked processes that decode and write (``engine.restore_procs``); -1: one per CPU when
    there are two or more, 0: none (the threads do it)."""


OVERWRITE_MODES: tuple[str, ...] = ("never", "if-changed", "always")


@dataclass
class RestoreResult:
    """Counts of a finished restore; ``exit_code`` is 3 when some entries were not restored."""

    files: int = 0
    dirs: int = 0
    other: int = 0
    bytes: int = 0
    skipped_existing: int = 0
    """Differing files left as they were (overwrite = never)."""
    unchanged: int = 0
    """Existing entries that already matched the snapshot."""
    overwritten: int = 0
    deleted: int = 0
    skipped_suspect: int = 0
    errors: int = 0
    suspect_restored: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return 3 if (self.errors or self.skipped_existing) else 0


@dataclass
class _WalkFrame:
    """A snapshot directory being restored: its nodes left, whether it is selected as a whole
    (``included``), whether anything below was, and its own (path, node) (None for the start)."""

    nodes: Iterator[Node]
    rel: bytes
    included: bool
    dir: tuple[bytes, Node] | None
    fresh: bool  # the directory did not exist before this restore (nothing in it needs checking)
    any_selected: bool = False


class RestoreSession(ContentWriter):
    """Restores one snapshot (or part of it) into ``options.target``."""

    def __init__(self, repo: RestoreRepo, options: RestoreOptions, sink: EventSink) -> None:
        if options.skip_suspect and options.only_suspect:
            raise UsageError("--skip-suspect and --only-suspect exclude each other: choose one")
        if options.overwrite not in OVERWRITE_MODES:
            raise UsageError(f"--overwrite {options.overwrite}: choose one of {', '.join(OVERWRITE_MODES)}")
        self.repo = repo
        self.opt = options
        self._overwrite = options.overwrite
        self.sink = sink
        self.result = RestoreResult()
        self.target = os.fsencode(os.path.abspath(options.target))
        self._include = ExcludeMatcher(options.include) if options.include else None
        self._exclude = ExcludeMatcher(options.exclude) if options.exclude else None
        self._is_root = os.geteuid() == 0
        self._dirs: list[tuple[bytes, Node]] = []
        self._links: dict[tuple[int, int], bytes] = {}
        self._deferred_links: list[tuple[bytes, bytes, Node]] = []
        # Pack name (None: blobs not in the index yet) → its wanted blobs not yet
        # handed to a worker, in walk order, and their stored bytes.
        self._plan: dict[str | None, Placements] = {}
        self._plan_bytes: dict[str, int] = {}
        self._empty: list[FileJob] = []
        # The workers restore packs (and create empty files) while the walk goes on,
        # so decoding and the kernel's file creation overlap the tree parsing. Not
        # with include filters, which may create a parent after its children.
        self._early = self._include is None
        self._to_create: list[FileJob] = []
        self._tasks: list[Future[None]] = []
        self._waited = 0
        self._max_queued = 0  # set with the worker count
        self._collector = CollectorPause()
        self._writers: WriterProcesses | None = None
        self._not_restored: list[FileJob] = []
        self._report_lock = threading.Lock()
        self._space = SpaceGuard(self.target, keep_going=options.keep_going)
        # Progress, read by a display while the restore runs (written under _report_lock).
        self.bytes_written = 0
        self.files_written = 0
        self.planned = False
        """The walk has finished: ``result.files`` and ``result.bytes`` are the totals."""

    def run(self, snapshot_ref: str) -> RestoreResult:
        """Restore the snapshot named by ``snapshot_ref`` ("latest", id or prefix)."""
        _, snap = self.repo.find_snapshot(snapshot_ref)
        return self.restore_tree(snap.tree)

    def restore_tree(self, tree_id: bytes | None) -> RestoreResult:
        """Restore the contents of the tree ``tree_id`` (a snapshot's root or a directory in it)."""
        fresh = not os.path.isdir(self.target)
        if not self.opt.dry_run:
            os.makedirs(self.target, exist_ok=True)
        # A remote read is mostly waiting for the network: one worker per connection keeps them
        # all busy while the others decode and write (2 workers on a 2-core machine left two of
        # the four SFTP/S3 connections idle and every worker alternating download and decode).
        workers = self.opt.workers or max(2, os.cpu_count() or 2, self.repo.parallel_reads())
        # The walk allocates hundreds of thousands of small objects (nodes, plans) without
        # cycles, yet each allocation burst ran the cycle collector over the whole index: about
        # a tenth of the restore's CPU time, holding the GIL the workers need (engine.collector).
        with self._collector, contextlib.ExitStack() as stack:
            # Forked with the collector paused (its objects frozen) and before any thread starts.
            self._writers = None
            if not self.opt.dry_run:
                self._writers = start_writers(
                    self.opt.writer_processes,
                    self.repo.blob_decoder,
                    is_root=self._is_root,
                    keep_going=self.opt.keep_going,
                )
            if self._writers is not None:
                stack.callback(self._writers.close)
                # A thread waits for its writer while others read the next ranges.
                workers = self.opt.workers or self._writers.count + self.repo.parallel_reads()
            pool = stack.enter_context(ThreadPoolExecutor(workers, thread_name_prefix="restore"))
            self._pool = pool
            self._max_queued = 4 * workers
            self._walk(tree_id, b"", ancestor_included=False, fresh=fresh)
            self.planned = True
            self._submit_creates()
            # Every directory exists now (include filters may create parents after
            # their children were planned), so the remaining files can be created.
            for job in self._empty:
                fd = self._open(job)
                if fd >= 0:
                    self._finish(job, fd)
            for name in list(self._plan):
                self._submit_pack(name)
            for fut in self._tasks:
                # OSErrors are per-file and already reported; anything else (a blob
                # failing verification, an unreadable pack) ends the restore.
                fut.result()
        if self._space.stopped:
            raise FatalError(self._space.message(self.result.bytes))
        if self._space.failures:
            self._warn(self._space.message(self.result.bytes))
        for job in self._not_restored:
            self.result.files -= 1
            self.result.bytes -= job.node_size
        for link, first, node in self._deferred_links:
            self._link(link, first, node)
        for path, node in reversed(self._dirs):
            self._apply_meta(path, node)
        return self.result

    # ----- selection ----------------------------------------------------------------------------

    def _walk(self, tree_id: bytes | None, rel: bytes, ancestor_included: bool, fresh: bool) -> bool:
        """Restore the children of a tree; returns whether anything below was selected.

        ``fresh``: the directory did not exist before this restore, so nothing in it can.
        Iterative, one frame per open directory: a snapshot thousands of levels deep must not
        exhaust Python's recursion limit. Directories get their metadata after their children, so
        they are recorded when their frame closes (post-order), as a recursive walk would.
        """
        root = _WalkFrame(
            self._nodes(tree_id, rel, ancestor_included, fresh), rel, ancestor_included, None, fresh
        )
        stack = [root]
        exclude, include = self._exclude, self._include
        while stack:
            frame = stack[-1]
            node = next(frame.nodes, None)
            if node is None:
                stack.pop()
                if frame.dir is not None and (frame.included or frame.any_selected):
                    dest, dir_node = frame.dir
                    if not frame.included:
                        self._mkdir(dest)
                    if not self.opt.dry_run:
                        self._dirs.append((dest, dir_node))
                    stack[-1].any_selected = True
                continue
            # os.fsencode, without its per-call lookups (this runs for every node).
            name = node.name.encode(_FS_ENCODING, _FS_ERRORS)
            if b"/" in name or name in (b"", b".", b".."):
                self._warn(f"skipping unsafe name {node.name!r} in the snapshot")
                continue
            child = frame.rel + b"/" + name
            is_dir = node.type == "dir"
            if exclude is not None and exclude.matches(child, is_dir):
                continue
            included = frame.included or include is None or include.matches(child, is_dir)
            if is_dir:
                dest = self.target + child
                created = self._mkdir(dest) if included else not os.path.isdir(dest)
                below_fresh = frame.fresh or created
                nodes = self._nodes(node.subtree, child, included, below_fresh)
                stack.append(_WalkFrame(nodes, child, included, (dest, node), below_fresh))
            elif included and self._wanted(node, child):
                self._restore_leaf(child, node, frame.fresh)
                frame.any_selected = True
        return root.any_selected

    def _nodes(self, tree_id: bytes | None, rel: bytes, included: bool, fresh: bool) -> Iterator[Node]:
        """The nodes of a directory about to be walked (``--delete`` tidies it first)."""
        nodes = self.repo.load_tree(tree_id).nodes if tree_id is not None else []
        self._collector.tick(len(nodes))
        if self.opt.delete and not fresh and (included or self._include is None):
            self._delete_extra(rel, {n.name.encode(_FS_ENCODING, _FS_ERRORS) for n in nodes})
        return iter(nodes)

    def _delete_extra(self, rel: bytes, keep: set[bytes]) -> None:
        """``--delete``: remove entries of the directory ``rel`` that the snapshot does not have
        (excluded names are left alone: the restore was told not to look at them)."""
        where = self.target + rel
        try:
            names = os.listdir(where)
        except FileNotFoundError:
            return
        except OSError as e:
            self._error(where, e)
            return
        for name in names:
            child = rel + b"/" + name
            path = where + b"/" + name
            is_dir = os.path.isdir(path) and not os.path.islink(path)
            if name in keep or (self._exclude is not None and self._exclude.matches(child, is_dir)):
                continue
            self.result.deleted += 1
            if self.opt.dry_run:
                continue
            try:
                if is_dir:
                    shutil.rmtree(path)
                else:
                    os.unlink(path)
            except OSError as e:
                self._error(path, e)

    def _wanted(self, node: Node, rel: bytes) -> bool:
        # Only suspect and failed files carry an extra key: most nodes have none.
        outcome = node_outcome(node) if node.extra else None
        suspect = outcome is not None and outcome.get("class") == "suspect"
        if self.opt.only_suspect and not suspect:
            return False
        if self.opt.skip_suspect and suspect:
            self.result.skipped_suspect += 1
            return False
        if suspect:
            self.result.suspect_restored.append(os.fsdecode(rel))
        return True

    # ----- creating entries ---------------------------------------------------------------------

    def _mkdir(self, path: bytes) -> bool:
        """Create a directory; True when this restore created it (or would, in a dry run)."""
        if self.opt.dry_run:
            self.result.dirs += 1
            return not os.path.isdir(path)
        try:
            # The walk creates parents first, so one mkdir is enough; makedirs would
            # stat the parent too, and every system call the main thread makes costs
            # it a wait for the GIL the workers hold while they decode.
            created = True
            try:
                os.mkdir(path)
            except FileExistsError:
                if not os.path.isdir(path):
                    raise
                created = False
            except FileNotFoundError:  # a parent is missing (include filters)
                os.makedirs(path, exist_ok=True)
        except OSError as e:
            self._error(path, e)
            return False
        self.result.dirs += 1
        return created

    def _restore_leaf(self, rel: bytes, node: Node, fresh: bool) -> None:
        dest = self.target + rel
        regular = node.type == "file"
        # In a directory this restore created nothing can exist yet, and a regular
        # file's O_EXCL open would refuse one anyway, so the common case skips this
        # lookup; hard-linked files keep it because the name of their first restored
        # copy must be one that really got written.
        if (not fresh or not regular or node.links > 1) and os.path.lexists(dest):
            keep = self.opt.overwrite != "always"
            if keep and existing_matches(self.repo, dest, node, verify=self.opt.verify):
                self.result.unchanged += 1
                if regular and node.links > 1:
                    self._links.setdefault((node.device_id, node.inode), dest)
                return
            if self.opt.overwrite == "never":
                self._skipped_existing(dest)
                return
            if os.path.isdir(dest) and not os.path.islink(dest):
                self._error(dest, OSError(errno.EISDIR, "a directory is in the way"))
                return
            self.result.overwritten += 1
            if not self.opt.dry_run:
                os.unlink(dest)
        if self.opt.dry_run:
            if regular:
                self.result.files += 1
                self.result.bytes += node.size
            else:
                self.result.other += 1
            return
        if regular and node.links > 1:
            key = (node.device_id, node.inode)
            first = self._links.get(key)
            if first is not None:
                self._deferred_links.append((dest, first, node))
                return
            self._links[key] = dest
        if regular:
            self._plan_file(dest, node)
            return
        try:
            # Include filters create a parent only after its children are visited.
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            if node.type == "symlink":
                os.symlink(os.fsencode(node.linktarget), dest)
            elif node.type == "fifo":
                os.mkfifo(dest, 0o600)
            elif node.type in ("dev", "chardev"):
                if not self._is_root:
                    self._warn(f"{os.fsdecode(dest)}: device nodes need root, skipped")
                    return
                kind = stat.S_IFCHR if node.type == "chardev" else stat.S_IFBLK
                os.mknod(dest, kind | 0o600, node.device)
            else:
                self._warn(f"{os.fsdecode(dest)}: {node.type} entries are not restored")
                return
            self.result.other += 1
            self._apply_meta(dest, node)
        except OSError as e:
            self._error(dest, e)

    def _plan_file(self, dest: bytes, node: Node) -> None:
        """Record where each blob of the file goes; the file is written once its packs are read."""
        job = FileJob(dest, node)
        offset = 0
        ready: list[str] = []
        plan = self._plan
        first: str | None = ""  # the pack of its first blob ("": none yet)
        for blob_id in node.content or []:
            loc = self.repo.pack_location(BlobType.DATA, blob_id)
            entry: PackedBlob | None
            if loc is None:
                pack: str | None = None
                entry = None
                length = self.repo.blob_length(BlobType.DATA, blob_id)
            else:
                pack, entry = loc
                length = entry.plaintext_length
                planned = self._plan_bytes.get(pack, 0) + entry.length
                self._plan_bytes[pack] = planned
                if planned >= TASK_BYTES and self._early:
                    ready.append(pack)
            if pack != first:
                if first != "":
                    job.shared = True
                first = pack
            blobs = plan.get(pack)
            if blobs is None:
                blobs = plan[pack] = {}
            wanted = blobs.get(blob_id)
            if wanted is None:
                blobs[blob_id] = (entry, [(job, offset)])
            else:
                wanted[1].append((job, offset))
            offset += length
            job.pending += 1
        job.size = offset
        self.result.files += 1
        self.result.bytes += node.size
        if not job.pending:
            if self._early:
                self._to_create.append(job)
                if len(self._to_create) >= CREATE_BATCH:
                    self._submit_creates()
            else:
                self._empty.append(job)
        # Only now, with the whole file planned (its countdown complete), may a
        # worker write its blobs and finish it.
        for pack in ready:
            if pack in plan:
                self._submit_pack(pack)

    def _link(self, dest: bytes, first: bytes, node: Node) -> None:
        try:
            os.link(first, dest)
            self.result.files += 1
        except OSError as e:
            self._error(dest, e)

    def _apply_meta(self, path: bytes, node: Node) -> None:
        """Owner (as root), permissions, xattrs and times; symlinks get owner and times only."""
        link = node.type == "symlink"
        try:
            if self._is_root:
                os.chown(path, node.uid, node.gid, follow_symlinks=False)
            if not link:
                os.chmod(path, posix_permissions(node.mode))
            for name, value in node.extended_attributes:
                try:
                    os.setxattr(path, name, value, follow_symlinks=False)
                except OSError as e:
                    if e.errno not in (errno.ENOTSUP, errno.EPERM):
                        raise
            os.utime(path, ns=(node.atime, node.mtime), follow_symlinks=False)
        except OSError as e:
            self._error(path, e)

    # ----- reporting ----------------------------------------------------------------------------

    def _skipped_existing(self, dest: bytes) -> None:
        with self._report_lock:
            self.result.skipped_existing += 1
        self._warn(f"{os.fsdecode(dest)} exists, not overwritten (use --overwrite to replace it)")

    def _error(self, path: bytes, e: OSError) -> None:
        with self._report_lock:
            self.result.errors += 1
        if self._space.absorb(e):
            return  # one line for all of them at the end
        self._warn(f"cannot restore {os.fsdecode(path)}: {e.strerror or e}")

    def _warn(self, message: str) -> None:
        # Workers report too: one message at a time reaches the sink.
        with self._report_lock:
            self.sink(Warning_(message))
