"""Reading a snapshot's contents: list a directory, read a file, stream a directory as tar.

One read path for every front end (``ls`` and the web page's snapshot browser): paths are
``str`` with undecodable bytes as surrogate escapes (``os.fsdecode``), exactly as node names are,
so a name round-trips to its original bytes. Each entry carries its metadata and, for a file that
came out ``suspect``, the stored outcome; the ``failed`` files of a directory (not in the tree,
named in the snapshot's outcome list) are listed beside it.

A :class:`SnapshotReader` is safe to share between threads: repository reads are serialised by
one lock, taken per blob, so a long download never blocks other requests for long.
"""

from __future__ import annotations

import posixpath
import stat
import tarfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from shadowvault.errors import UsageError
from shadowvault.repo import BlobType, FileType, Node, Repository, Snapshot

from .nodes import node_outcome, posix_permissions
from .status import ClassCounts, WriterProcess

__all__ = ["EntryOutcome", "SnapshotEntry", "SnapshotInfo", "SnapshotReader", "walk"]

_TAR_BLOCK = 512


@dataclass(frozen=True)
class EntryOutcome:
    """A file's stored class, reason, message, attempts and writers (``suspect`` or ``failed``)."""

    path: str
    classification: str
    reason: str | None
    message: str | None
    attempts: int
    writers: tuple[WriterProcess, ...]


@dataclass(frozen=True)
class SnapshotInfo:
    """A snapshot as listed: id, time, host, paths, tags, and what shadowvault recorded in it."""

    id: str
    time: datetime
    hostname: str
    paths: tuple[str, ...]
    tags: tuple[str, ...]
    set_name: str | None
    counts: ClassCounts | None
    partial: bool


@dataclass(frozen=True)
class SnapshotEntry:
    """One directory entry of a snapshot; ``name``/``path`` may hold surrogate escapes."""

    name: str
    path: str
    type: str
    size: int
    mode: str
    mtime: datetime
    user: str
    group: str
    linktarget: str
    outcome: EntryOutcome | None


def walk(repo: Repository, tree_id: bytes | None, prefix: str) -> Iterator[tuple[str, Node]]:
    """Depth-first (path, node) pairs below a tree."""
    if tree_id is None:
        return
    for node in repo.load_tree(tree_id).nodes:
        path = f"{prefix}/{node.name}"
        yield path, node
        if node.type == "dir":
            yield from walk(repo, node.subtree, path)


def _outcome(path: str, data: dict[str, Any]) -> EntryOutcome:
    attempts = data.get("attempts", 1)
    writers = tuple(
        WriterProcess(pid=w["pid"], command=str(w.get("command") or "?"))
        for w in data.get("writers") or []
        if isinstance(w, dict) and isinstance(w.get("pid"), int)
    )
    return EntryOutcome(
        path=path,
        classification=str(data.get("class")),
        reason=data.get("reason"),
        message=data.get("message"),
        attempts=len(attempts) if isinstance(attempts, list) else int(attempts),
        writers=writers,
    )


def _info(sid: str, snap: Snapshot) -> SnapshotInfo:
    extra = snap.extra.get("shadowvault") if isinstance(snap.extra, dict) else None
    counts = None
    if isinstance(extra, dict) and isinstance(extra.get("summary"), dict):
        s = extra["summary"]
        counts = ClassCounts(int(s.get("ok", 0)), int(s.get("suspect", 0)), int(s.get("failed", 0)))
    return SnapshotInfo(
        id=sid,
        time=datetime.fromtimestamp(snap.time / 1e9, UTC),
        hostname=snap.hostname,
        paths=tuple(snap.paths),
        tags=tuple(snap.tags),
        set_name=extra.get("set") if isinstance(extra, dict) else None,
        counts=counts,
        partial=bool(extra.get("partial")) if isinstance(extra, dict) else False,
    )


def normalise(path: str) -> str:
    """``/a/b`` form of a path inside a snapshot ("" and "/" are the root)."""
    cleaned = posixpath.normpath("/" + path.strip("/"))
    return "/" if cleaned in ("/", "//") else cleaned


class SnapshotReader:
    """Read-only access to the snapshots of one repository (index loaded on demand)."""

    def __init__(self, repo: Repository) -> None:
        self.repo = repo
        self.lock = threading.Lock()

    # -- snapshots ---------------------------------------------------------------------------

    def _refresh_index(self) -> None:
        """Read index files written since; start over when some were removed (a prune ran)."""
        present = {bytes.fromhex(name) for name, _ in self.repo.list_files(FileType.INDEX)}
        if self.repo.index.index_files - present:
            self.repo.reset_index()
        self.repo.load_index()

    def snapshots(self) -> list[SnapshotInfo]:
        """Every snapshot, newest first; picks up snapshots and index files written since."""
        with self.lock:
            self._refresh_index()
            found = self.repo.list_snapshots()
        return [_info(sid, snap) for sid, snap in reversed(found)]

    def snapshot(self, ref: str) -> tuple[SnapshotInfo, Snapshot]:
        """One snapshot by id, unique prefix or "latest"; ``RepoError`` when there is none."""
        with self.lock:
            self._refresh_index()
            sid, snap = self.repo.find_snapshot(ref)
        return _info(sid, snap), snap

    def failed_files(self, snap: Snapshot) -> list[EntryOutcome]:
        """The files a snapshot records as ``failed`` (they are not in its tree)."""
        extra = snap.extra.get("shadowvault") if isinstance(snap.extra, dict) else None
        outcomes = extra.get("outcomes", []) if isinstance(extra, dict) else []
        return [
            _outcome(str(o.get("path")), o)
            for o in outcomes
            if isinstance(o, dict) and o.get("class") == "failed"
        ]

    # -- trees -------------------------------------------------------------------------------

    def _node(self, snap: Snapshot, path: str) -> Node | None:
        """The node at ``path`` (None for the root, which has no node of its own)."""
        node: Node | None = None
        tree_id: bytes | None = snap.tree
        for part in [p for p in normalise(path).split("/") if p]:
            if tree_id is None:
                raise UsageError(f"{path} is not in the snapshot")
            with self.lock:
                nodes = self.repo.load_tree(tree_id).nodes
            node = next((n for n in nodes if n.name == part), None)
            if node is None:
                raise UsageError(f"{path} is not in the snapshot")
            tree_id = node.subtree if node.type == "dir" else None
        return node

    def _children(self, tree_id: bytes | None) -> list[Node]:
        if tree_id is None:
            return []
        with self.lock:
            return list(self.repo.load_tree(tree_id).nodes)

    def entry(self, snap: Snapshot, path: str) -> SnapshotEntry | None:
        """The entry at ``path`` (None for the root); ``UsageError`` when it is not there."""
        node = self._node(snap, path)
        return _entry(normalise(path), node) if node is not None else None

    def listdir(self, snap: Snapshot, path: str) -> list[SnapshotEntry]:
        """The entries of directory ``path``; ``UsageError`` for a missing path or a non-directory."""
        path = normalise(path)
        node = self._node(snap, path)
        if node is not None and node.type != "dir":
            raise UsageError(f"{path} is a {node.type}, not a directory")
        tree_id = snap.tree if node is None else node.subtree
        base = "" if path == "/" else path
        return [_entry(f"{base}/{child.name}", child) for child in self._children(tree_id)]

    # -- contents ----------------------------------------------------------------------------

    def _blobs(self, node: Node) -> Iterator[bytes]:
        for blob_id in node.content or []:
            with self.lock:
                data = self.repo.load_blob(BlobType.DATA, blob_id)
            yield data

    def read_file(self, snap: Snapshot, path: str) -> tuple[SnapshotEntry, Iterator[bytes]]:
        """A regular file's entry and its contents as a stream of chunks."""
        node = self._node(snap, path)
        if node is None or node.type != "file":
            raise UsageError(f"{normalise(path)} is not a regular file in the snapshot")
        return _entry(normalise(path), node), self._blobs(node)

    def tar(self, snap: Snapshot, path: str) -> Iterator[bytes]:
        """Directory ``path`` and everything below it as a tar stream (GNU format, exact names).

        Members are named relative to the directory's parent, so unpacking ``/srv/www`` gives
        ``www/...``. Regular files, directories, symlinks and FIFOs are included; devices and
        sockets are left out.
        """
        path = normalise(path)
        node = self._node(snap, path)
        if node is not None and node.type != "dir":
            raise UsageError(f"{path} is a {node.type}, not a directory")
        top = posixpath.basename(path) or "snapshot"
        root_tree = snap.tree if node is None else node.subtree
        if node is not None:
            yield _header(top, node)
        yield from self._tar_tree(root_tree, top)
        yield b"\0" * (_TAR_BLOCK * 2)  # end of archive

    def _tar_tree(self, tree_id: bytes | None, prefix: str) -> Iterator[bytes]:
        for child in self._children(tree_id):
            name = f"{prefix}/{child.name}"
            if child.type not in ("file", "dir", "symlink", "fifo"):
                continue
            yield _header(name, child)
            if child.type == "file":
                written = 0
                for chunk in self._blobs(child):
                    written += len(chunk)
                    yield chunk
                if written != child.size:
                    raise UsageError(f"{name}: stored data is {written} bytes, the node says {child.size}")
                if written % _TAR_BLOCK:
                    yield b"\0" * (_TAR_BLOCK - written % _TAR_BLOCK)
            elif child.type == "dir":
                yield from self._tar_tree(child.subtree, name)


_TAR_TYPES = {
    "file": tarfile.REGTYPE,
    "dir": tarfile.DIRTYPE,
    "symlink": tarfile.SYMTYPE,
    "fifo": tarfile.FIFOTYPE,
}


def _header(name: str, node: Node) -> bytes:
    info = tarfile.TarInfo(name)
    info.type = _TAR_TYPES[node.type]
    info.size = node.size if node.type == "file" else 0
    info.mode = posix_permissions(node.mode)
    info.mtime = node.mtime // 1_000_000_000
    info.uid, info.gid = node.uid, node.gid
    info.uname, info.gname = node.user, node.group
    info.linkname = node.linktarget if node.type == "symlink" else ""
    # GNU format with surrogateescape: names are written as their exact original bytes.
    return info.tobuf(tarfile.GNU_FORMAT, "utf-8", "surrogateescape")


def _entry(path: str, node: Node) -> SnapshotEntry:
    outcome = node_outcome(node)
    kind = {"dir": stat.S_IFDIR, "symlink": stat.S_IFLNK, "fifo": stat.S_IFIFO, "file": stat.S_IFREG}
    return SnapshotEntry(
        name=node.name,
        path=path,
        type=node.type,
        size=node.size,
        mode=stat.filemode(kind.get(node.type, 0) | posix_permissions(node.mode)),
        mtime=datetime.fromtimestamp(node.mtime / 1e9, UTC),
        user=node.user or str(node.uid),
        group=node.group or str(node.gid),
        linktarget=node.linktarget,
        outcome=_outcome(path, outcome) if outcome else None,
    )
