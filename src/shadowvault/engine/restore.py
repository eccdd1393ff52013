"""RestoreSession: a snapshot tree → files on disk, data and metadata.

Never overwrites an existing file unless asked. File contents are written by
worker threads (decryption and decompression release the GIL); directory
metadata is applied last, deepest first, because creating children changes a
directory's times. All-zero chunks become holes, so sparse files stay sparse.
"""

from __future__ import annotations

import errno
import os
import stat
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from shadowvault.errors import UsageError
from shadowvault.fs import ExcludeMatcher
from shadowvault.repo import BlobType, Node, Repository

from .events import EventSink, Warning_
from .nodes import node_outcome, posix_permissions

_HOLE_BLOCK = 64 * 1024
_ZEROS = bytes(_HOLE_BLOCK)


@dataclass
class RestoreOptions:
    """What to restore and where."""

    target: str
    include: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    overwrite: bool = False
    skip_suspect: bool = False
    only_suspect: bool = False
    workers: int = 0


@dataclass
class RestoreResult:
    """Counts of a finished restore; ``exit_code`` is 3 when some entries were not restored."""

    files: int = 0
    dirs: int = 0
    other: int = 0
    bytes: int = 0
    skipped_existing: int = 0
    skipped_suspect: int = 0
    errors: int = 0
    suspect_restored: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return 3 if (self.errors or self.skipped_existing) else 0


class RestoreSession:
    """Restores one snapshot (or part of it) into ``options.target``."""

    def __init__(self, repo: Repository, options: RestoreOptions, sink: EventSink) -> None:
        if options.skip_suspect and options.only_suspect:
            raise UsageError("--skip-suspect and --only-suspect exclude each other: choose one")
        self.repo = repo
        self.opt = options
        self.sink = sink
        self.result = RestoreResult()
        self.target = os.fsencode(os.path.abspath(options.target))
        self._include = ExcludeMatcher(options.include) if options.include else None
        self._exclude = ExcludeMatcher(options.exclude)
        self._is_root = os.geteuid() == 0
        self._dirs: list[tuple[bytes, Node]] = []
        self._links: dict[tuple[int, int], bytes] = {}
        self._deferred_links: list[tuple[bytes, bytes, Node]] = []
        self._futures: list[tuple[bytes, Future[None]]] = []

    def run(self, snapshot_ref: str) -> RestoreResult:
        """Restore the snapshot named by ``snapshot_ref`` ("latest", id or prefix)."""
        _, snap = self.repo.find_snapshot(snapshot_ref)
        os.makedirs(self.target, exist_ok=True)
        workers = self.opt.workers or max(2, os.cpu_count() or 2)
        with ThreadPoolExecutor(workers, thread_name_prefix="restore") as pool:
            self._pool = pool
            self._walk(snap.tree, b"", ancestor_included=False)
            for path, fut in self._futures:
                try:
                    fut.result()
                except OSError as e:
                    self._error(path, e)
        for link, first, node in self._deferred_links:
            self._link(link, first, node)
        for path, node in reversed(self._dirs):
            self._apply_meta(path, node)
        return self.result

    # ----- selection ----------------------------------------------------------------------------

    def _walk(self, tree_id: bytes | None, rel: bytes, ancestor_included: bool) -> bool:
        """Restore the children of a tree; returns whether anything below was selected."""
        if tree_id is None:
            return False
        any_selected = False
        for node in self.repo.load_tree(tree_id).nodes:
            name = os.fsencode(node.name)
            if b"/" in name or name in (b"", b".", b".."):
                self._warn(f"skipping unsafe name {node.name!r} in the snapshot")
                continue
            child = rel + b"/" + name
            is_dir = node.type == "dir"
            if self._exclude.matches(child, is_dir):
                continue
            included = ancestor_included or self._include is None or self._include.matches(child, is_dir)
            if is_dir:
                dest = self.target + child
                if included:
                    self._mkdir(dest)
                below = self._walk(node.subtree, child, included)
                if included or below:
                    if not included:
                        self._mkdir(dest)
                    self._dirs.append((dest, node))
                    any_selected = True
            elif included and self._wanted(node, child):
                self._restore_leaf(child, node)
                any_selected = True
        return any_selected

    def _wanted(self, node: Node, rel: bytes) -> bool:
        outcome = node_outcome(node)
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

    def _mkdir(self, path: bytes) -> None:
        try:
            os.makedirs(path, exist_ok=True)
        except OSError as e:
            self._error(path, e)
            return
        self.result.dirs += 1

    def _restore_leaf(self, rel: bytes, node: Node) -> None:
        dest = self.target + rel
        if os.path.lexists(dest):
            if not self.opt.overwrite:
                self.result.skipped_existing += 1
                self._warn(f"{os.fsdecode(dest)} exists, not overwritten (use --overwrite to replace it)")
                return
            if os.path.isdir(dest) and not os.path.islink(dest):
                self._error(dest, OSError(errno.EISDIR, "a directory is in the way"))
                return
            os.unlink(dest)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        if node.type == "file" and node.links > 1:
            key = (node.device_id, node.inode)
            first = self._links.get(key)
            if first is not None:
                self._deferred_links.append((dest, first, node))
                return
            self._links[key] = dest
        try:
            if node.type == "file":
                self._futures.append((dest, self._pool.submit(self._write_file, dest, node)))
                self.result.files += 1
                self.result.bytes += node.size
                return
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

    def _write_file(self, dest: bytes, node: Node) -> None:
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            offset = 0
            seeked = False
            zeros = memoryview(_ZEROS)
            for blob_id in node.content or []:
                data = memoryview(self.repo.load_blob(BlobType.DATA, blob_id))
                # Zero runs become holes, block by block, so sparse files stay sparse.
                for start in range(0, len(data), _HOLE_BLOCK):
                    block = data[start : start + _HOLE_BLOCK]
                    if block == zeros[: len(block)]:
                        seeked = True
                    else:
                        if seeked:
                            os.lseek(fd, offset + start, os.SEEK_SET)
                            seeked = False
                        while block:
                            block = block[os.write(fd, block) :]
                offset += len(data)
            if seeked or offset != node.size:
                os.ftruncate(fd, offset)
        finally:
            os.close(fd)
        self._apply_meta(dest, node)

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

    def _error(self, path: bytes, e: OSError) -> None:
        self.result.errors += 1
        self._warn(f"cannot restore {os.fsdecode(path)}: {e.strerror or e}")

    def _warn(self, message: str) -> None:
        self.sink(Warning_(message))
