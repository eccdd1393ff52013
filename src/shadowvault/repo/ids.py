"""Typed storage and blob IDs: 32-byte SHA-256 digests, shown as lower-case hex.

Every file in a repository except ``config`` is named by the SHA-256 of its
stored bytes, and every blob by the SHA-256 of its plaintext. The ``NewType``
aliases let mypy keep a tree id from being passed where a pack id is expected;
at run time they are plain ``bytes``.
"""

from __future__ import annotations

import enum
import hashlib
from typing import NewType

ID_LEN = 32
"""Length of every id in bytes (SHA-256)."""

BlobId = NewType("BlobId", bytes)
DataId = NewType("DataId", bytes)
TreeId = NewType("TreeId", bytes)
PackId = NewType("PackId", bytes)
IndexId = NewType("IndexId", bytes)
SnapshotId = NewType("SnapshotId", bytes)
KeyId = NewType("KeyId", bytes)


def hash_bytes(data: bytes | bytearray | memoryview) -> bytes:
    """SHA-256 of ``data`` (hashlib releases the GIL for large inputs)."""
    return hashlib.sha256(data).digest()


def to_hex(id_: bytes) -> str:
    """Full lower-case hex form, as used in file names and JSON."""
    return id_.hex()


def short(id_: bytes | str) -> str:
    """The 8-hex-digit short form restic prints."""
    text = id_ if isinstance(id_, str) else id_.hex()
    return text[:8]


def is_hex_id(text: str) -> bool:
    """True when ``text`` is a full 64-digit lower-case hex id."""
    if len(text) != 2 * ID_LEN:
        return False
    return all(c in "0123456789abcdef" for c in text)


def parse_id(text: str) -> bytes:
    """Parse a full hex id; ``ValueError`` when it is not 64 hex digits."""
    if len(text) != 2 * ID_LEN:
        raise ValueError(f"id {text!r} is not {2 * ID_LEN} hex digits")
    return bytes.fromhex(text)


class BlobType(enum.Enum):
    """The two kinds of blob; a blob id is only unique together with its type."""

    DATA = "data"
    TREE = "tree"

    # Enum's own __hash__ is Python code (the member's name hashed again); an index keyed by
    # (type, id) pays it on every blob it loads and every lookup. Members are singletons and
    # compare by identity, so the identity hash is as good and runs in C.
    __hash__ = object.__hash__
