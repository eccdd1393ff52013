"""Index files (``index/<id>``): which blobs live in which pack, at what offset and length.

JSON: ``{"supersedes": [...], "packs": [{"id": pack, "blobs": [{"id", "type",
"offset", "length", "uncompressed_length"?}]}]}``. ``uncompressed_length`` is
present only for compressed blobs. The oldest index format (a bare JSON array of
packs) is read too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from shadowvault.repo.files import jsonfmt
from shadowvault.repo.files.pack import PackedBlob
from shadowvault.repo.ids import ID_LEN, BlobType, parse_id

MAX_INDEX_JSON = 7 * 1024 * 1024
"""Budget for one index file's JSON, so the stored file stays below restic's 8 MiB."""


@dataclass
class IndexFile:
    """Decoded index file: packs with their blobs, and ids of index files it supersedes."""

    packs: list[tuple[bytes, list[PackedBlob]]] = field(default_factory=list)
    supersedes: list[bytes] = field(default_factory=list)

    def to_json(self) -> bytes:
        """Compact JSON in restic's field order."""
        doc: dict[str, Any] = {}
        if self.supersedes:
            doc["supersedes"] = [s.hex() for s in self.supersedes]
        doc["packs"] = [_pack_doc(pid, blobs) for pid, blobs in self.packs]
        return jsonfmt.dumps(doc)

    @classmethod
    def from_json(cls, raw: bytes) -> IndexFile:
        """Parse an index file; ``ValueError`` when malformed."""
        packs, supersedes = parse_index(raw)
        return cls([(pid, [packed_blob(loc) for loc in locs]) for pid, locs in packs], supersedes)


BlobLoc = tuple[bytes, BlobType, bytes, int, int, "int | None"]
"""One blob of an index file: (pack id, type, blob id, offset, length, uncompressed length or None)."""


def packed_blob(loc: BlobLoc) -> PackedBlob:
    """The ``PackedBlob`` of one blob tuple of :func:`parse_index`."""
    return PackedBlob(loc[1], loc[2], loc[3], loc[4], loc[5])


def parse_index(raw: bytes) -> tuple[list[tuple[bytes, list[BlobLoc]]], list[bytes]]:
    """An index file's packs, one plain tuple per blob, and the ids it supersedes; ``ValueError``
    when malformed.

    Plain tuples, not ``PackedBlob``s: every command that opens a repository sends every blob of
    its index through here, and the master index keeps these tuples as they are (``repo.index``).
    """
    doc: Any = jsonfmt.loads(raw)
    supersedes: list[bytes] = []
    if isinstance(doc, list):
        packs_doc = doc
    elif isinstance(doc, dict):
        packs_doc = doc.get("packs") or []
        supersedes = [parse_id(s) for s in doc.get("supersedes") or []]
    else:
        raise ValueError("index is neither a JSON object nor an array")
    types = _BLOB_TYPES
    fromhex = bytes.fromhex
    packs: list[tuple[bytes, list[BlobLoc]]] = []
    try:
        for p in packs_doc:
            pack_id = parse_id(p["id"])
            locs: list[BlobLoc] = []
            for b in p.get("blobs") or ():
                kind = b["type"]
                blob_id = fromhex(b["id"])
                offset, length = b["offset"], b["length"]
                ulen = b.get("uncompressed_length")
                if (
                    len(blob_id) != ID_LEN
                    or type(offset) is not int
                    or type(length) is not int
                    or not (ulen is None or type(ulen) is int)
                ):
                    raise ValueError(f"blob {b.get('id')!r} of pack {p['id']!r} is malformed")
                # A dictionary lookup instead of the enum's call (once per blob).
                blob_type = types[kind] if kind in types else BlobType(kind)
                locs.append((pack_id, blob_type, blob_id, offset, length, ulen))
            packs.append((pack_id, locs))
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"index entry lacks a valid field: {exc}") from exc
    return packs, supersedes


def _pack_doc(pack_id: bytes, blobs: Sequence[PackedBlob]) -> dict[str, Any]:
    out = []
    for b in blobs:
        entry: dict[str, Any] = {
            "id": b.id.hex(),
            "type": b.type.value,
            "offset": b.offset,
            "length": b.length,
        }
        if b.uncompressed_length is not None:
            entry["uncompressed_length"] = b.uncompressed_length
        out.append(entry)
    return {"id": pack_id.hex(), "blobs": out}


_BLOB_TYPES = {t.value: t for t in BlobType}


def split_into_files(packs: Sequence[tuple[bytes, Sequence[PackedBlob]]]) -> list[IndexFile]:
    """Group packs into index files whose JSON stays within ``MAX_INDEX_JSON``.

    A pack is never split across files, as restic expects.
    """
    files: list[IndexFile] = []
    current = IndexFile()
    size = 0
    for pack_id, blobs in packs:
        piece = len(jsonfmt.dumps(_pack_doc(pack_id, blobs))) + 1
        if current.packs and size + piece > MAX_INDEX_JSON:
            files.append(current)
            current = IndexFile()
            size = 0
        current.packs.append((pack_id, list(blobs)))
        size += piece
    if current.packs:
        files.append(current)
    return files
