"""The in-memory master index: (blob type, blob id) → (pack id, place in pack).

It merges every index file of the repository plus the packs written in this
session. Packs added with ``new=True`` are remembered until ``take_new_packs``
hands them to the writer of the next index file. Safe for concurrent use.

Each blob is held as one plain tuple (``BlobLoc``) that both the per-type dictionary and its pack's
list share; ``PackedBlob`` and ``IndexEntry`` values are made when asked for. Why: an incremental
backup, a restore and a check all start by loading the whole index, and for 200,000 small files
building a frozen ``PackedBlob``, a key tuple and an ``IndexEntry`` per blob took 1.3 of the 1.6 s
that loading cost (issue 10). Memory: about 250 bytes per indexed blob (the tuple, the id, the
dictionary slot and the pack list's slot).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from shadowvault.repo.files.index import BlobLoc, packed_blob, parse_index
from shadowvault.repo.files.pack import PackedBlob
from shadowvault.repo.ids import BlobType


class IndexEntry(NamedTuple):
    """Where one blob is stored."""

    pack_id: bytes
    blob: PackedBlob


class MasterIndex:
    """All known blobs of a repository."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_type: dict[BlobType, dict[bytes, BlobLoc]] = {t: {} for t in BlobType}
        self._packs: dict[bytes, list[BlobLoc]] = {}
        self._new_packs: list[bytes] = []
        self.index_files: set[bytes] = set()
        """Ids of the index files loaded so far."""

    def add_pack(self, pack_id: bytes, blobs: Sequence[PackedBlob], *, new: bool = False) -> None:
        """Record a pack's blobs; ``new`` marks it for the next index file."""
        locs = [(pack_id, b.type, b.id, b.offset, b.length, b.uncompressed_length) for b in blobs]
        with self._lock:
            self._merge([(pack_id, locs)])
            if new:
                self._new_packs.append(pack_id)

    def _merge(self, packs: Iterable[tuple[bytes, list[BlobLoc]]]) -> None:
        """Add packs' blobs (lock held). A pack keeps each blob once, also when it is listed
        twice (two index files name it after an interrupted rewrite) or names a blob twice; a
        blob in two packs is found in the first."""
        by_type = self._by_type
        for pack_id, locs in packs:
            known = self._packs.get(pack_id)
            if known is None:
                self._packs[pack_id] = known = []
            seen = {(loc[1], loc[2]) for loc in known}
            fresh = []
            for loc in locs:
                key = (loc[1], loc[2])
                if key not in seen:
                    seen.add(key)
                    fresh.append(loc)
            known.extend(fresh)
            for loc in fresh:
                by_type[loc[1]].setdefault(loc[2], loc)

    def add_index_json(self, index_id: bytes, raw: bytes) -> None:
        """Merge an index file from its JSON; ``ValueError`` when malformed, and then nothing of it
        is merged. The parsed tuples are kept as they are (see the module docstring)."""
        packs, _ = parse_index(raw)
        with self._lock:
            self._merge(packs)
            self.index_files.add(index_id)

    def lookup(self, t: BlobType, blob_id: bytes) -> IndexEntry | None:
        """Where the blob is, or None."""
        loc = self._by_type[t].get(blob_id)
        return None if loc is None else IndexEntry(loc[0], packed_blob(loc))

    def has(self, t: BlobType, blob_id: bytes) -> bool:
        """True when the blob is indexed."""
        return blob_id in self._by_type[t]

    def pack_ids(self) -> list[bytes]:
        """Every pack that holds indexed blobs."""
        with self._lock:
            return list(self._packs)

    def pack_blobs(self, pack_id: bytes) -> list[PackedBlob]:
        """Blobs the index places in ``pack_id`` (empty if unknown)."""
        with self._lock:
            locs = self._packs.get(pack_id, ())
        return [packed_blob(loc) for loc in locs]

    def blob_count(self) -> int:
        """Number of distinct (type, id) pairs."""
        return sum(len(d) for d in self._by_type.values())

    def new_pack_count(self) -> int:
        """Packs uploaded since the last index file was written."""
        with self._lock:
            return len(self._new_packs)

    def take_new_packs(self) -> list[tuple[bytes, list[PackedBlob]]]:
        """Packs added with ``new=True`` since the last call, with their blobs."""
        with self._lock:
            taken = [(pid, list(self._packs[pid])) for pid in self._new_packs]
            self._new_packs = []
        return [(pid, [packed_blob(loc) for loc in locs]) for pid, locs in taken]

    def restore_new_packs(self, pack_ids: Iterable[bytes]) -> None:
        """Put packs back for the next index file (after a failed index write)."""
        with self._lock:
            self._new_packs[:0] = list(pack_ids)
