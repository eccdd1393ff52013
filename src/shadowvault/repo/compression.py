"""zstd compression and the framing of "unpacked" repository files.

Blobs in a version-2 repository may be zstd-compressed; the pack header then
records both lengths. Unpacked files (index, snapshot, lock, config) carry a
one-byte encoding version in front of their plaintext: ``2`` means zstd-compressed
JSON follows, while a leading ``[`` or ``{`` means the whole plaintext is plain
JSON (repository version 1 and old writers). No crypto and no I/O here.
"""

from __future__ import annotations

import threading

import zstandard

ENCODING_V2 = 2
"""Encoding-version byte of compressed unpacked files."""

LEVEL = 3
"""zstd level: restic's "auto" mode is a fast default level too."""

_local = threading.local()


def _compressor() -> zstandard.ZstdCompressor:
    # zstd contexts are not thread-safe; one per thread avoids a lock around
    # the (GIL-releasing) compression call.
    comp = getattr(_local, "comp", None)
    if comp is None:
        comp = zstandard.ZstdCompressor(level=LEVEL, write_content_size=True)
        _local.comp = comp
    return comp


def _decompressor() -> zstandard.ZstdDecompressor:
    dec = getattr(_local, "dec", None)
    if dec is None:
        dec = zstandard.ZstdDecompressor()
        _local.dec = dec
    return dec


def compress(data: bytes | bytearray | memoryview) -> bytes:
    """zstd-compress ``data`` into one frame."""
    return _compressor().compress(data)


def decompress(data: bytes | bytearray | memoryview, expected_length: int | None = None) -> bytes:
    """Decompress one or more zstd frames.

    Frames written by other tools may omit the content size, so the streaming
    decoder is used; ``expected_length`` (from the index) is checked when given.
    ``ValueError`` on corrupt input or a length mismatch.
    """
    if expected_length is not None:
        # Blobs are one frame of known size: one call, without the streaming decoder's
        # 128 KiB steps (each retakes the GIL and grows the result). Anything unusual
        # (several frames, a wrong size, damage) is left to the careful path below.
        # The one-shot call allocates what the frame header declares, whatever
        # max_output_size says, so a damaged header declaring petabytes raised
        # MemoryError: only a header declaring exactly the expected size takes it.
        try:
            declared = zstandard.frame_content_size(data)
        except zstandard.ZstdError:
            declared = -1
        if declared == expected_length:
            try:
                out = _decompressor().decompress(data, max_output_size=expected_length)
            except zstandard.ZstdError:
                out = b""
            if len(out) == expected_length:
                return out
    try:
        out = _decompressor().decompressobj(read_across_frames=True).decompress(data)
    except zstandard.ZstdError as exc:
        raise ValueError(f"zstd data is corrupt: {exc}") from exc
    if expected_length is not None and len(out) != expected_length:
        raise ValueError(f"zstd data decompressed to {len(out)} bytes, expected {expected_length}")
    return out


def encode_unpacked(json_bytes: bytes, repo_version: int) -> bytes:
    """Plaintext of an unpacked file: version byte 2 + zstd for v2, bare JSON for v1."""
    if repo_version >= 2:
        return bytes([ENCODING_V2]) + compress(json_bytes)
    return json_bytes


def decode_unpacked(plaintext: bytes) -> bytes:
    """JSON bytes from an unpacked file's plaintext, whatever encoding it uses.

    ``ValueError`` for an empty file or an unknown encoding version.
    """
    if not plaintext:
        raise ValueError("unpacked file is empty")
    first = plaintext[0]
    if first in (ord("["), ord("{")):
        return plaintext
    if first == ENCODING_V2:
        return decompress(memoryview(plaintext)[1:])
    raise ValueError(f"unknown unpacked-file encoding version {first}")
