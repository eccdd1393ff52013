"""The read-only file system ``mount`` shows: restic's layout over the repository's snapshots.

::

    ids/<short id>/…            every snapshot by id
    snapshots/<time>/…          by time (ISO 8601, seconds), plus ``latest`` → the newest
    hosts/<host>/<time>/…       by host
    tags/<tag>/<time>/…         by tag

Below a snapshot directory are the snapshot's own paths ("tmp/data/file"). This module resolves
paths to either a virtual directory (names only) or a tree node, and reads file contents by
blob offsets; the FUSE glue in the CLI turns these into system-call answers.

Snapshots made after the mount are shown too (restic's mount does the same): listing a directory
of the layout (``/``, ``ids/``, ``snapshots/``, ``hosts/…``, ``tags/…``), or looking up a name it
lacks, re-reads the repository's snapshot list, at most once every :data:`REFRESH_SECONDS`. Only
new snapshot files are loaded and decoded; when the list changed, new index files are read (the
new snapshot's blobs are in them) and the layout is rebuilt. A prune that removed index files
makes the whole index be read again, so no read goes to a deleted pack.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from shadowvault.engine.select import SnapshotFilter
from shadowvault.repo import BlobType, FileType, Node, Repository, Snapshot

REFRESH_SECONDS = 5.0
"""Least time between two reads of the snapshot list (restic waits a minute; a few seconds keep a
script that backs up and then looks at the mount from waiting long, at the cost of one directory
listing of snapshots/ per interval)."""


@dataclass
class VirtualDir:
    """A directory of the layout (not in any snapshot): its entries, each a name → target."""

    entries: dict[str, VirtualDir | SnapshotRoot | str] = field(default_factory=dict)
    """A nested VirtualDir, a snapshot's root, or a symlink target (str)."""
    mtime: int = 0


@dataclass(frozen=True)
class SnapshotRoot:
    """The root of one snapshot's tree."""

    snapshot: Snapshot


def _when(snap: Snapshot) -> str:
    return datetime.fromtimestamp(snap.time / 1e9).astimezone().isoformat(timespec="seconds")


def _unique(d: VirtualDir, name: str, value: VirtualDir | SnapshotRoot | str) -> None:
    # Two snapshots in the same second get "-1", "-2", … as restic does.
    candidate, n = name, 0
    while candidate in d.entries:
        n += 1
        candidate = f"{name}-{n}"
    d.entries[candidate] = value


def build_layout(snapshots: list[tuple[str, Snapshot]]) -> VirtualDir:
    """The layout's root directory for these snapshots."""
    newest = max((s.time for _, s in snapshots), default=0)
    root = VirtualDir(mtime=newest)
    ids, times, hosts, tags = (VirtualDir(mtime=newest) for _ in range(4))
    root.entries.update({"ids": ids, "snapshots": times, "hosts": hosts, "tags": tags})
    for sid, snap in sorted(snapshots, key=lambda item: (item[1].time, item[0])):
        snap_root = SnapshotRoot(snap)
        ids.entries[sid[:8]] = snap_root
        _unique(times, _when(snap), snap_root)
        host = hosts.entries.setdefault(snap.hostname or "unknown", VirtualDir(mtime=snap.time))
        assert isinstance(host, VirtualDir)
        _unique(host, _when(snap), snap_root)
        host.mtime = max(host.mtime, snap.time)
        for tag in snap.tags:
            tdir = tags.entries.setdefault(tag, VirtualDir(mtime=snap.time))
            assert isinstance(tdir, VirtualDir)
            _unique(tdir, _when(snap), snap_root)
            tdir.mtime = max(tdir.mtime, snap.time)
    if snapshots:
        times.entries["latest"] = max(
            (n for n, v in times.entries.items() if isinstance(v, SnapshotRoot)),
            key=lambda n: (times.entries[n].snapshot.time, n),  # type: ignore[union-attr]
        )
    return root


class MountTree:
    """Path → layout directory, snapshot root or tree node; file reads by offset."""

    def __init__(
        self,
        repo: Repository,
        filt: SnapshotFilter | None = None,
        *,
        refresh_seconds: float = REFRESH_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.repo = repo
        self._filter = filt or SnapshotFilter()
        self._refresh_seconds = refresh_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._snapshots: dict[str, Snapshot] = {}
        """Every snapshot file read so far (filtered or not), by id: each is decoded once."""
        self._shown: list[str] = []
        self._checked = 0.0
        self.root = VirtualDir()
        self._offsets: dict[tuple[bytes, ...], list[int]] = {}
        self._cached: tuple[bytes, bytes] | None = None
        self.refresh(force=True)

    def snapshot_count(self) -> int:
        """How many snapshots the layout shows."""
        return len(self._shown)

    def refresh(self, *, force: bool = False) -> bool:
        """Re-read the snapshot list unless that was done less than the interval ago; True when the
        layout changed."""
        with self._lock:
            now = self._clock()
            if not force and now - self._checked < self._refresh_seconds:
                return False
            self._checked = now
            names = [name for name, _ in self.repo.list_files(FileType.SNAPSHOT)]
            for name in names:
                if name not in self._snapshots:
                    self._snapshots[name] = self.repo.load_snapshot(name)
            for gone in set(self._snapshots) - set(names):
                del self._snapshots[gone]
            shown = sorted(n for n in names if self._filter.matches(self._snapshots[n]))
            if shown == self._shown and not force:
                return False
            # The index after the snapshot list: a backup writes its index before its snapshot.
            present = {bytes.fromhex(n) for n, _ in self.repo.list_files(FileType.INDEX)}
            if self.repo.index.index_files - present:
                self.repo.reset_index()  # a prune replaced index files
            self.repo.load_index()
            self._shown = shown
            self.root = build_layout([(n, self._snapshots[n]) for n in shown])
            return True

    def lookup(self, path: str) -> VirtualDir | SnapshotRoot | Node | str | None:
        """What ``path`` ("/ids/abcd1234/etc") is: None when nothing; a str is a symlink target.

        A name the layout lacks may be a snapshot made since the last refresh: look again after one.
        """
        found, in_layout = self._resolve(path)
        if found is None and in_layout and self.refresh():
            found, _ = self._resolve(path)
        return found

    def listing(self, path: str) -> list[tuple[str, VirtualDir | SnapshotRoot | Node | str]] | None:
        """The entries of the directory at ``path`` (None when there is none); listing a layout
        directory refreshes the snapshot list first."""
        found = self.lookup(path)
        if isinstance(found, VirtualDir) and self.refresh():
            found = self.lookup(path)
        if found is None or isinstance(found, str) or (isinstance(found, Node) and found.type != "dir"):
            return None
        return self.children(found)

    def _resolve(self, path: str) -> tuple[VirtualDir | SnapshotRoot | Node | str | None, bool]:
        # (entry, whether the walk stopped at a name missing from the layout's own directories)
        current: VirtualDir | SnapshotRoot | Node | str = self.root
        for name in [p for p in path.split("/") if p]:
            if isinstance(current, VirtualDir):
                nxt = current.entries.get(name)
                if nxt is None:
                    return None, True
                current = nxt
            elif isinstance(current, SnapshotRoot | Node):
                tree = current.snapshot.tree if isinstance(current, SnapshotRoot) else current.subtree
                if tree is None or (isinstance(current, Node) and current.type != "dir"):
                    return None, False
                node = next((n for n in self.repo.load_tree(tree).nodes if n.name == name), None)
                if node is None:
                    return None, False
                current = node
            else:
                return None, False
        return current, False

    def children(
        self, entry: VirtualDir | SnapshotRoot | Node
    ) -> list[tuple[str, VirtualDir | SnapshotRoot | Node | str]]:
        """The entries of a directory, by name."""
        if isinstance(entry, VirtualDir):
            return sorted(entry.entries.items())
        tree = entry.snapshot.tree if isinstance(entry, SnapshotRoot) else entry.subtree
        if tree is None:
            return []
        return [(n.name, n) for n in self.repo.load_tree(tree).nodes]

    def read(self, node: Node, offset: int, size: int) -> bytes:
        """Up to ``size`` bytes of a file's content from ``offset`` (blobs decoded as needed)."""
        content = node.content or []
        key = tuple(content)
        with self._lock:
            starts = self._offsets.get(key)
            if starts is None:
                starts, pos = [], 0
                for blob_id in content:
                    starts.append(pos)
                    pos += self.repo.blob_length(BlobType.DATA, blob_id)
                self._offsets[key] = starts
        out = bytearray()
        i = bisect.bisect_right(starts, offset) - 1
        while i < len(content) and len(out) < size:
            if i < 0:
                i = 0
            data = self._blob(content[i])
            begin = max(0, offset + len(out) - starts[i])
            out += data[begin : begin + size - len(out)]
            i += 1
        return bytes(out)

    def _blob(self, blob_id: bytes) -> bytes:
        # Sequential reads ask for the same blob many times (128 KiB at a time): keep the last one.
        with self._lock:
            if self._cached is not None and self._cached[0] == blob_id:
                return self._cached[1]
        data = self.repo.load_blob(BlobType.DATA, blob_id)
        with self._lock:
            self._cached = (blob_id, data)
        return data
