"""The read-only file system ``mount`` shows: restic's layout over the repository's snapshots.

::

    ids/<short id>/…            every snapshot by id
    snapshots/<time>/…          by time (ISO 8601, seconds), plus ``latest`` → the newest
    hosts/<host>/<time>/…       by host
    tags/<tag>/<time>/…         by tag

Below a snapshot directory are the snapshot's own paths ("tmp/data/file"). This module resolves
paths to either a virtual directory (names only) or a tree node, and reads file contents by
blob offsets; the FUSE glue in the CLI turns these into system-call answers. Snapshots are listed
once, when the file system is built.
"""

from __future__ import annotations

import bisect
import threading
from dataclasses import dataclass, field
from datetime import datetime

from shadowvault.repo import BlobType, Node, Repository, Snapshot


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


class MountTree:
    """Path → layout directory, snapshot root or tree node; file reads by offset."""

    def __init__(self, repo: Repository, snapshots: list[tuple[str, Snapshot]]) -> None:
        self.repo = repo
        newest = max((s.time for _, s in snapshots), default=0)
        self.root = VirtualDir(mtime=newest)
        ids, times, hosts, tags = (VirtualDir(mtime=newest) for _ in range(4))
        self.root.entries.update({"ids": ids, "snapshots": times, "hosts": hosts, "tags": tags})
        for sid, snap in sorted(snapshots, key=lambda item: item[1].time):
            root = SnapshotRoot(snap)
            ids.entries[sid[:8]] = root
            _unique(times, _when(snap), root)
            host = hosts.entries.setdefault(snap.hostname or "unknown", VirtualDir(mtime=snap.time))
            assert isinstance(host, VirtualDir)
            _unique(host, _when(snap), root)
            host.mtime = max(host.mtime, snap.time)
            for tag in snap.tags:
                tdir = tags.entries.setdefault(tag, VirtualDir(mtime=snap.time))
                assert isinstance(tdir, VirtualDir)
                _unique(tdir, _when(snap), root)
                tdir.mtime = max(tdir.mtime, snap.time)
        if snapshots:
            times.entries["latest"] = max(
                (n for n, v in times.entries.items() if isinstance(v, SnapshotRoot)),
                key=lambda n: (times.entries[n].snapshot.time, n),  # type: ignore[union-attr]
            )
        self._lock = threading.Lock()
        self._offsets: dict[tuple[bytes, ...], list[int]] = {}
        self._cached: tuple[bytes, bytes] | None = None

    def lookup(self, path: str) -> VirtualDir | SnapshotRoot | Node | str | None:
        """What ``path`` ("/ids/abcd1234/etc") is: None when nothing; a str is a symlink target."""
        current: VirtualDir | SnapshotRoot | Node | str = self.root
        for name in [p for p in path.split("/") if p]:
            if isinstance(current, VirtualDir):
                nxt = current.entries.get(name)
                if nxt is None:
                    return None
                current = nxt
            elif isinstance(current, SnapshotRoot | Node):
                tree = current.snapshot.tree if isinstance(current, SnapshotRoot) else current.subtree
                if tree is None or (isinstance(current, Node) and current.type != "dir"):
                    return None
                node = next((n for n in self.repo.load_tree(tree).nodes if n.name == name), None)
                if node is None:
                    return None
                current = node
            else:
                return None
        return current

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
