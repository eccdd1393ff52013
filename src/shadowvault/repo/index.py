"""The in-memory master index: (blob type, blob id) → (pack id, place in pack).

It merges every index file of the repository plus the packs written in this
session. Packs added with ``new=True`` are remembered until ``take_new_packs``
hands them to the writer of the next index file. Safe for concurrent use.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from shadowvault.repo.files.index import IndexFile
from shadowvault.repo.files.pack import PackedBlob
from shadowvault.repo.ids import BlobType


class IndexEntry(NamedTuple):
    """Where one blob is stored.

    A named tuple, not a frozen dataclass: the master index holds one per blob (200,000 for a
    tree of small files), and a tuple is built in a third of the time and takes less memory.
    """

    pack_id: bytes
    blob: PackedBlob


class MasterIndex:
    """All known blobs of a repository."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._blobs: dict[tuple[BlobType, bytes], IndexEntry] = {}
        self._packs: dict[bytes, list[PackedBlob]] = {}
        self._new_packs: list[bytes] = []
        self.index_files: set[bytes] = set()
        """Ids of the index files loaded so far."""

    def add_pack(self, pack_id: bytes, blobs: Sequence[PackedBlob], *, new: bool = False) -> None:
        """Record a pack's blobs; ``new`` marks it for the next index file."""
        with self._lock:
            known = self._packs.setdefault(pack_id, [])
            seen = {(b.type, b.id) for b in known}
            index = self._blobs
            for b in blobs:
                key = (b.type, b.id)
                if key not in seen:
                    known.append(b)
                    seen.add(key)
                if key not in index:
                    index[key] = IndexEntry(pack_id, b)
            if new:
                self._new_packs.append(pack_id)

    def add_index_file(self, index_id: bytes, index_file: IndexFile) -> None:
        """Merge a decoded index file."""
        for pack_id, blobs in index_file.packs:
            self.add_pack(pack_id, blobs)
        with self._lock:
            self.index_files.add(index_id)

    def lookup(self, t: BlobType, blob_id: bytes) -> IndexEntry | None:
        """Where the blob is, or None."""
        return self._blobs.get((t, blob_id))

    def has(self, t: BlobType, blob_id: bytes) -> bool:
        """True when the blob is indexed."""
        return (t, blob_id) in self._blobs

    def pack_ids(self) -> list[bytes]:
        """Every pack that holds indexed blobs."""
        with self._lock:
            return list(self._packs)

    def pack_blobs(self, pack_id: bytes) -> list[PackedBlob]:
        """Blobs the index places in ``pack_id`` (empty if unknown)."""
        with self._lock:
            return list(self._packs.get(pack_id, ()))

    def blob_count(self) -> int:
        """Number of distinct (type, id) pairs."""
        return len(self._blobs)

    def new_pack_count(self) -> int:
        """Packs uploaded since the last index file was written."""
        with self._lock:
            return len(self._new_packs)

    def take_new_packs(self) -> list[tuple[bytes, list[PackedBlob]]]:
        """Packs added with ``new=True`` since the last call, with their blobs."""
        with self._lock:
            taken = [(pid, list(self._packs[pid])) for pid in self._new_packs]
            self._new_packs = []
        return taken

    def restore_new_packs(self, pack_ids: Iterable[bytes]) -> None:
        """Put packs back for the next index file (after a failed index write)."""
        with self._lock:
            self._new_packs[:0] = list(pack_ids)
