"""Pack files: encrypted blobs back to back, then the encrypted header and its length.

Layout: ``Blob1 || ... || BlobN || EncryptedHeader || u32le(len(EncryptedHeader))``.
The plaintext header has one entry per blob in pack order: a type byte
(0 data, 1 tree, 2 compressed data, 3 compressed tree), the u32le stored length,
for compressed types the u32le plaintext length, then the 32-byte plaintext
SHA-256. Offsets follow from the running sum of stored lengths.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

from shadowvault.repo import crypto
from shadowvault.repo.ids import ID_LEN, BlobType

TRAILER_SIZE = 4
ENTRY_SIZE = 1 + 4 + ID_LEN
COMPRESSED_ENTRY_SIZE = 1 + 4 + 4 + ID_LEN
MAX_HEADER_SIZE = 16 * 1024 * 1024
"""Sanity bound for a header length read from an untrusted trailer."""

_TYPE_BYTE = {
    (BlobType.DATA, False): 0,
    (BlobType.TREE, False): 1,
    (BlobType.DATA, True): 2,
    (BlobType.TREE, True): 3,
}
_BYTE_TYPE = {v: k for k, v in _TYPE_BYTE.items()}


@dataclass(frozen=True, slots=True)
class PackedBlob:
    """One blob's place in a pack. ``uncompressed_length`` is None for uncompressed blobs.

    With slots: the master index holds one per blob (no instance dictionary each).
    """

    type: BlobType
    id: bytes
    offset: int
    length: int
    uncompressed_length: int | None = None

    @property
    def plaintext_length(self) -> int:
        """Length of the blob's data once decrypted and decompressed."""
        if self.uncompressed_length is not None:
            return self.uncompressed_length
        return crypto.plaintext_length(self.length)


def encode_header(blobs: Sequence[PackedBlob]) -> bytes:
    """Plaintext header for ``blobs`` (which must be in pack order)."""
    out = bytearray()
    for b in blobs:
        compressed = b.uncompressed_length is not None
        out.append(_TYPE_BYTE[(b.type, compressed)])
        out += struct.pack("<I", b.length)
        if compressed:
            out += struct.pack("<I", b.uncompressed_length)
        out += b.id
    return bytes(out)


def decode_header(header: bytes) -> list[PackedBlob]:
    """Entries of a plaintext header, with offsets computed; ``ValueError`` when malformed."""
    blobs: list[PackedBlob] = []
    pos = 0
    offset = 0
    while pos < len(header):
        kind = _BYTE_TYPE.get(header[pos])
        if kind is None:
            raise ValueError(f"pack header has invalid blob type {header[pos]}")
        btype, compressed = kind
        size = COMPRESSED_ENTRY_SIZE if compressed else ENTRY_SIZE
        if pos + size > len(header):
            raise ValueError("pack header ends inside an entry")
        (length,) = struct.unpack_from("<I", header, pos + 1)
        ulen: int | None = None
        if compressed:
            (ulen,) = struct.unpack_from("<I", header, pos + 5)
        blob_id = header[pos + size - ID_LEN : pos + size]
        blobs.append(PackedBlob(btype, bytes(blob_id), offset, length, ulen))
        offset += length
        pos += size
    return blobs


def header_size(blobs: Sequence[PackedBlob]) -> int:
    """Stored size of the encrypted header plus trailer for ``blobs``."""
    plain = sum(COMPRESSED_ENTRY_SIZE if b.uncompressed_length is not None else ENTRY_SIZE for b in blobs)
    return plain + crypto.EXTENSION + TRAILER_SIZE


def expected_pack_size(blobs: Sequence[PackedBlob]) -> int:
    """Total file size of a pack holding exactly ``blobs``."""
    return sum(b.length for b in blobs) + header_size(blobs)


def seal_trailer(key: crypto.Key, blobs: Sequence[PackedBlob]) -> bytes:
    """Encrypted header followed by its 4-byte length: append this to the blob bytes."""
    enc = crypto.seal(key, encode_header(blobs))
    return enc + struct.pack("<I", len(enc))


def header_length_from_trailer(trailer: bytes, pack_size: int) -> int:
    """Encrypted header length from the last 4 bytes; ``ValueError`` when implausible."""
    if len(trailer) != TRAILER_SIZE:
        raise ValueError("pack trailer must be 4 bytes")
    hlen: int = struct.unpack("<I", trailer)[0]
    if hlen < crypto.EXTENSION or hlen > pack_size - TRAILER_SIZE or hlen > MAX_HEADER_SIZE:
        raise ValueError(f"pack header length {hlen} is invalid for a pack of {pack_size} bytes")
    return hlen


def open_header(key: crypto.Key, encrypted_header: bytes, pack_size: int) -> list[PackedBlob]:
    """Decrypt and decode a header; checks the blobs fill the pack exactly.

    ``crypto.CiphertextError`` when the header's MAC fails, ``ValueError`` when
    the entries do not add up to the pack size.
    """
    blobs = decode_header(crypto.open_(key, encrypted_header))
    body = sum(b.length for b in blobs)
    if body + len(encrypted_header) + TRAILER_SIZE != pack_size:
        raise ValueError(
            f"pack header describes {body} blob bytes, but the pack has "
            f"{pack_size - len(encrypted_header) - TRAILER_SIZE}"
        )
    return blobs


def parse_pack(key: crypto.Key, pack: bytes) -> list[PackedBlob]:
    """Header entries of a complete pack held in memory."""
    hlen = header_length_from_trailer(pack[-TRAILER_SIZE:], len(pack))
    start = len(pack) - TRAILER_SIZE - hlen
    return open_header(key, pack[start : len(pack) - TRAILER_SIZE], len(pack))
