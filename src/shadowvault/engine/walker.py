"""The scanner of a backup: lays out the sources and walks them, handing each entry on.

Owns the source layout (``/home/u/docs`` gives nodes ``home`` → ``u`` → ``docs``, as in
restic), the iterative walk in sorted byte order with one ``_DirFrame`` per open directory (no
recursion: a tree thousands of levels deep must not exhaust Python's recursion limit), the
selection rules (``fs.Selector``, built-in excludes, our own snapshot work directories), the
snapshot views per source and the live reads below them, and the pairing of each entry with its
node in the parent snapshot. Regular files go to the file stage (``engine.filesaver``), listed
directories to the tree stage (``engine.treesaver``); other entries become nodes here.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shadowvault.errors import FatalError
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
from shadowvault.openfiles import Reason
from shadowvault.repo import Node
from shadowvault.snapshots import DEFAULT_PREFIX, SnapshotMode, SnapshotSession, SnapshotView

from .collector import CollectorPause
from .filesaver import FileSaver, renamed
from .nodes import node_from_meta
from .parent import indexed_tree
from .ports import BackupRepo
from .prescan import Prescan
from .readahead import ReadAhead
from .stopping import StopState
from .tree_builder import PendingDir
from .treesaver import TreeSaver

if TYPE_CHECKING:
    from .backup import BackupOptions

# Names the snapshot providers give their snapshot and clone work directories.
_INTERNAL_PREFIX = f".{DEFAULT_PREFIX}-".encode()


@dataclass
class _DirFrame:
    """A directory being walked: its pending tree, paths, snapshot view and the names left."""

    d: PendingDir
    orig: bytes
    read_path: bytes
    view: SnapshotView | None
    names: Iterator[bytes]


def parent_children(repo: BackupRepo, tree_id: bytes | None) -> dict[str, Node] | None:
    """The nodes of a parent snapshot's tree by name (None without a parent tree)."""
    if tree_id is None:
        return None
    indexed_tree(repo, tree_id)  # written by a session that finished after our index load
    return {n.name: n for n in repo.load_tree(tree_id).nodes}


def builtin_excludes(sources: list[str]) -> list[str]:
    """The built-in list, minus patterns that would exclude a source the user named.

    Backing up ``/tmp/build`` on purpose must work even though ``/tmp/*`` is excluded by
    default when backing up ``/``.
    """
    named = [os.fsencode(s) for s in sources]
    return [p for p in default_excludes() if not any(ExcludeMatcher([p]).matches(s, True) for s in named)]


def build_selector(opt: BackupOptions, sources: list[str]) -> Selector:
    """The selection rules of a session: the set's patterns, the built-in ones, markers, devices."""
    excludes = list(opt.excludes)
    if opt.use_default_excludes:
        excludes = builtin_excludes(sources) + excludes
    return Selector(
        ExcludeMatcher(excludes),
        opt.exclude_if_present,
        opt.one_file_system,
        devices_of(sources),
        runtime_excluded_paths(*opt.excluded_paths),
        detect_swap=opt.use_default_excludes,
    )


def internal_name(orig: bytes, name: bytes) -> bool:
    """A snapshot or clone work directory by its name (ours or another session's)."""
    return name.startswith(_INTERNAL_PREFIX)


class Walker:
    """Walks the sources of one session (see the module docstring)."""

    def __init__(
        self,
        repo: BackupRepo,
        opt: BackupOptions,
        sources: list[str],
        *,
        snaps: SnapshotSession,
        readahead: ReadAhead,
        files: FileSaver,
        trees: TreeSaver,
        stop: StopState,
        collector: CollectorPause,
        selector: Selector | None = None,
        prescan: Prescan | None = None,
    ) -> None:
        self.repo = repo
        self.opt = opt
        self.sources = sources
        self.snaps = snaps
        self.readahead = readahead
        self.files = files
        self.trees = trees
        self.builder = trees.builder
        self.stop = stop
        self.collector = collector
        self.selector = selector if selector is not None else build_selector(opt, sources)
        self.prescan = prescan

    # ----- sources ------------------------------------------------------------------------------

    def backup_sources(self, root: PendingDir) -> None:
        """Lay out the intermediate directories of every source, then walk each source."""
        trie: dict[str, Any] = {}
        for src in self.sources:
            node = trie
            for part in src.strip("/").split("/"):
                node = node.setdefault(part, {})
            node.clear()  # a source covers everything below it
            node[""] = src
        self._lay_out(root, trie, "")
        root.listed = True
        self.builder.try_seal(root)

    def _lay_out(self, d: PendingDir, trie: dict[str, Any], prefix: str) -> None:
        for name in sorted(trie, key=os.fsencode):
            path = f"{prefix}/{name}"
            sub = trie[name]
            parent_node = (d.parent_nodes or {}).get(name)
            if "" in sub:
                # A source given as a symlink is stored as the symlink, as restic does, with or
                # without a snapshot (the view would walk the directory it points to).
                view = None if os.path.islink(path) else self.snaps.view(Path(path))
                read_path = os.fsencode(path)
                if view is not None:
                    read_path = os.fsencode(str(view.walk_root))
                    # --one-file-system compares against the snapshot's own device number.
                    self.selector.root_devices.add(os.lstat(read_path).st_dev)
                below = self._entry(d, name.encode(), os.fsencode(path), read_path, parent_node, view, True)
                if below is not None:
                    self._walk_dir(*below, is_source=True)
                continue
            meta = read_meta(os.fsencode(path))
            child = self._child_dir(d, meta, parent_node)
            self._lay_out(child, sub, path)
            child.listed = True
            self.builder.try_seal(child)

    def _child_dir(self, d: PendingDir, meta: FileMeta, parent_node: Node | None) -> PendingDir:
        """A pending directory under ``d``, knowing its counterpart in the parent snapshot."""
        old_tree = parent_node.subtree if parent_node is not None and parent_node.type == "dir" else None
        return PendingDir(
            meta=meta,
            parent=d,
            slot=d.reserve(),
            parent_nodes=parent_children(self.repo, old_tree),
            parent_tree=old_tree,
        )

    # ----- the walk -----------------------------------------------------------------------------

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
            if name is None or self.stop.walk_should_stop():
                stack.pop()
                self.trees.listed(frame.d)
                continue
            self.files.poll_retries()
            self.files.collect_reads(wait_all=False)
            self.trees.seal_ready()
            parent_node = (frame.d.parent_nodes or {}).get(os.fsdecode(name))
            orig, read_path = frame.orig + b"/" + name, frame.read_path + b"/" + name
            below = self._entry(frame.d, name, orig, read_path, parent_node, frame.view, False)
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
        self.collector.tick(len(names))
        if self.opt.force or d.parent_nodes is None:
            self.readahead.directory(read_path, names)
        if view is None:
            self.files.dbs.listed(orig, names)
            if self.prescan is not None and d.parent_nodes:
                self.prescan.submit(orig, names, d.parent_nodes)
        return _DirFrame(d, orig, read_path, view, iter(names))

    def _entry(
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
            self.files.failed_early(orig, "io-error", f"cannot read metadata: {e.strerror}")
            return None
        meta = renamed(meta, name)
        if not is_source and (not self.selector.selected(orig, meta) or self._internal(orig, name)):
            return None
        if meta.kind == "dir":
            if view is not None and not is_source and not self.opt.one_file_system and _mounted_below(orig):
                meta, read_path, view = self._live_below_snapshot(orig, name, meta), orig, None
            descend = is_source or self.selector.descend(orig, meta)
            if descend and view is None and not is_source and self._taken_whole(d, orig, meta, parent_node):
                return None
            child = self._child_dir(d, meta, parent_node)
            if descend:
                return child, orig, read_path, view
            # A mount point under --one-file-system: recorded, not entered (as restic does).
            child.listed = True
            self.builder.try_seal(child)
        elif meta.kind == "file":
            self.files.backup_file(d, orig, read_path, meta, parent_node, view)
        else:
            d.add(node_from_meta(meta))
        return None

    def _taken_whole(self, d: PendingDir, orig: bytes, meta: FileMeta, parent_node: Node | None) -> bool:
        """A live directory a verifier found as the parent snapshot has it (``engine.prescan``):
        its node, from this walk's ``lstat``, takes the parent's tree, and it is not walked."""
        subtree = parent_node.subtree if parent_node is not None and parent_node.type == "dir" else None
        if self.prescan is None or subtree is None:
            return False
        whole = self.prescan.answer(orig)
        # A directory changed since its verifier listed it is walked: the parent's tree is taken
        # only for the directory this walk's own lstat describes.
        if whole is None or not whole.seen_as(meta.inode, meta.mtime_ns, meta.ctime_ns):
            return False
        d.add(node_from_meta(meta, subtree=subtree))
        self.files.counters.unchanged_tree(orig, whole.files, whole.size)
        return True

    def _live_below_snapshot(self, orig: bytes, name: bytes, snap_meta: FileMeta) -> FileMeta:
        """A file system or nested subvolume below a snapshotted source is an empty directory in
        the snapshot: read it live under ``auto``; ``required`` promised snapshots only."""
        where = os.fsdecode(orig)
        if self.opt.snapshot_mode is SnapshotMode.REQUIRED:
            raise FatalError(
                f"{where} is a separate file system or subvolume below a snapshotted source and is not in "
                "the snapshot: add it as a source of its own, exclude it, or use snapshot=auto"
            )
        self.files.warn(
            f"{where} is a separate file system or subvolume not covered by the snapshot; reading it live"
        )
        try:
            return renamed(read_meta(orig), name)
        except OSError:
            return snap_meta

    def _internal(self, orig: bytes, name: bytes) -> bool:
        """Snapshot and clone work directories (this session's or another's) are never backed up."""
        if name.startswith(_INTERNAL_PREFIX):
            return True
        return orig in self.snaps.internal_raw

    def _dir_failed(self, d: PendingDir, orig: bytes, error: OSError, is_source: bool) -> None:
        """A directory that cannot be listed is a failed entry, left out of the tree like a failed
        file: the snapshot does not hold what was asked for, so it must not pass as complete. A
        source that cannot be listed fails the whole set (an empty snapshot would say "ok")."""
        where = os.fsdecode(orig)
        assert d.parent is not None
        self.builder.settle(d.parent, d.slot, None)
        if isinstance(error, FileNotFoundError) and not is_source:
            # Deleted between its parent's listing and its own: nothing is lost (as for files).
            self.files.warn(f"{where} was deleted before it could be read; not in this snapshot")
            return
        reason = Reason.PERMISSION_DENIED if isinstance(error, PermissionError) else Reason.IO_ERROR
        self.files.failed_early(orig, reason.value, f"cannot list directory: {error.strerror}")
        if is_source:
            raise FatalError(
                f"cannot read source {where}: {error.strerror}: run as a user who may read it, "
                "or remove it from the sources"
            )


def _mounted_below(orig: bytes) -> bool:
    """True when live directory ``orig`` is on another device than its parent (mount or subvolume)."""
    try:
        return os.lstat(orig).st_dev != os.lstat(os.path.dirname(orig)).st_dev
    except OSError:
        return False
