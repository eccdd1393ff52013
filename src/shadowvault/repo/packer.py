"""Concurrent blob saving: encrypt blobs into open packs, seal full packs, upload, index.

``BlobSaver.save_blob`` is called from many worker threads. Hashing,
compression and encryption run in the calling thread without any lock (they
release the GIL); only the dedup check and the append to the open pack of the
blob's type hold the lock. The thread whose append makes a pack reach the target
size takes that pack out and hands it to the upload threads (seal, hash, write,
fsync, index), so the savers go on encrypting while a pack is written: one thread
for a local repository, one per connection for a remote one (``connections``);
at most ``MAX_QUEUED_UPLOADS`` full packs per thread wait, which bounds memory.
Until a pack's upload has finished and its blobs are in the master index, its
blobs are "pending": ``has`` reports them and ``pending_blob`` serves their
bytes, so dedup and reads see every saved blob at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from shadowvault.errors import RepoError
from shadowvault.repo import compression, crypto
from shadowvault.repo.backends.base import Backend, FileType, upload_connections
from shadowvault.repo.files import pack
from shadowvault.repo.files.pack import PackedBlob
from shadowvault.repo.ids import BlobType, hash_bytes
from shadowvault.repo.index import MasterIndex

DEFAULT_PACK_SIZE = 16 * 1024 * 1024
MAX_QUEUED_UPLOADS = 2
"""Full packs waiting per upload thread before the savers wait."""


@dataclass
class OpenPack:
    """Blobs of one type accumulated for the next pack file."""

    type: BlobType
    # The encrypted blobs are kept as separate parts and copied out once at
    # seal; appending each to one buffer took that copy under the saver's lock.
    parts: list[bytes] = field(default_factory=list)
    blobs: list[PackedBlob] = field(default_factory=list)
    size: int = 0
    data: bytearray | None = None
    """The whole pack once sealed."""

    def add(self, blob_id: bytes, stored: bytes, uncompressed_length: int | None) -> int:
        """Append one encrypted blob; returns its position (for ``stored``; entry is ``blobs[i]``)."""
        self.blobs.append(PackedBlob(self.type, blob_id, self.size, len(stored), uncompressed_length))
        self.parts.append(stored)
        self.size += len(stored)
        return len(self.blobs) - 1

    def stored(self, i: int) -> bytes:
        """The encrypted bytes of blob ``i``, from its part or, once sealed, from the pack."""
        if self.data is None:
            return self.parts[i]
        e = self.blobs[i]
        return bytes(self.data[e.offset : e.offset + e.length])

    def seal(self, key: crypto.Key) -> bytearray:
        """Append the encrypted header + length; returns the pack bytes.

        Each part is dropped as soon as it is copied, so the pack is not held twice;
        callers serialise this with ``stored`` (the BlobSaver lock).
        """
        parts = self.parts
        parts.append(pack.seal_trailer(key, self.blobs))
        out = bytearray()
        for i, part in enumerate(parts):
            # Large bytearrays grow by mremap on Linux: no re-copy of what is in.
            out += part
            parts[i] = b""
        self.parts = []
        self.data = out
        return out


def encode_blob(
    key: crypto.Key, data: bytes | bytearray | memoryview, compress: bool
) -> tuple[bytes, int | None]:
    """Stored form of a blob and its uncompressed length (None when stored uncompressed).

    Compression is kept only when it actually saves space; restic reads both forms.
    """
    if compress:
        packed = compression.compress(data)
        if len(packed) < len(data):
            return crypto.seal(key, packed), len(data)
    return crypto.seal(key, data), None


class BlobSaver:
    """Owns the open packs of a repository and the packs being uploaded."""

    def __init__(
        self,
        key: crypto.Key,
        backend: Backend,
        index: MasterIndex,
        *,
        pack_size: int = DEFAULT_PACK_SIZE,
        compress: bool = True,
        on_pack_saved: Callable[[bytes, list[PackedBlob]], None] | None = None,
    ) -> None:
        if pack_size < 1:
            raise ValueError("pack_size must be positive")
        self._key = key
        self._backend = backend
        self._index = index
        self.pack_size = pack_size
        self._compress = compress
        self._on_pack_saved = on_pack_saved
        self._cond = threading.Condition(threading.Lock())
        self._open: dict[BlobType, OpenPack] = {}
        self._reserved: set[tuple[BlobType, bytes]] = set()
        # Blob → its open pack and position there, until the pack is in the index.
        self._pending: dict[tuple[BlobType, bytes], tuple[OpenPack, int]] = {}
        self._inflight = 0
        self._error: BaseException | None = None
        self._uploader: ThreadPoolExecutor | None = None
        # Packs this saver has stored, per blob type (the session summary reports data packs).
        self.packs_written: dict[BlobType, int] = dict.fromkeys(BlobType, 0)
        # A remote backend asks for several uploads at once (one per connection): a single
        # stream over a network with latency leaves most of the bandwidth unused.
        self._upload_threads = upload_connections(backend)
        self._max_inflight = MAX_QUEUED_UPLOADS * self._upload_threads

    def _raise_sticky(self) -> None:
        if self._error is not None:
            raise RepoError(
                f"an earlier pack upload failed ({self._error}): the blobs of this session are "
                "incomplete, start a new session"
            ) from self._error

    def has(self, t: BlobType, blob_id: bytes) -> bool:
        """True when the blob is indexed, pending in a pack, or being encrypted by another thread."""
        if self._index.has(t, blob_id):
            return True
        k = (t, blob_id)
        with self._cond:
            return k in self._pending or k in self._reserved

    def save_blob(
        self, t: BlobType, data: bytes | bytearray | memoryview, blob_id: bytes | None = None
    ) -> tuple[bytes, bool]:
        """Store a blob unless an identical one is known; returns (id, added)."""
        if blob_id is None:
            blob_id = hash_bytes(data)
        k = (t, blob_id)
        with self._cond:
            self._raise_sticky()
            if self._index.has(t, blob_id) or k in self._pending or k in self._reserved:
                return blob_id, False
            self._reserved.add(k)
        try:
            stored, ulen = encode_blob(self._key, data, self._compress)
        except BaseException:
            with self._cond:
                self._reserved.discard(k)
                self._cond.notify_all()
            raise
        self._append(t, blob_id, stored, ulen, reserved=True)
        return blob_id, True

    def encode(self, data: bytes | bytearray | memoryview) -> tuple[bytes, bytes, int | None]:
        """Pure (any thread or forked process): the blob's id, stored form and uncompressed length."""
        return (hash_bytes(data), *encode_blob(self._key, data, self._compress))

    def save_encoded(
        self, t: BlobType, blob_id: bytes, stored: bytes, uncompressed_length: int | None
    ) -> bool:
        """Store a blob another process encoded with this repository's key (``encode``) unless an
        identical one is known; returns whether it was added."""
        k = (t, blob_id)
        with self._cond:
            self._raise_sticky()
            if self._index.has(t, blob_id) or k in self._pending or k in self._reserved:
                return False
        return self._append(t, blob_id, stored, uncompressed_length, reserved=False)

    def _append(
        self, t: BlobType, blob_id: bytes, stored: bytes, ulen: int | None, *, reserved: bool
    ) -> bool:
        """Add an encoded blob to its open pack; hand the pack to an upload thread once full."""
        k = (t, blob_id)
        full: OpenPack | None = None
        uploader: ThreadPoolExecutor | None = None
        with self._cond:
            if reserved:
                self._reserved.discard(k)
            elif k in self._pending or k in self._reserved:
                return False  # saved by another thread meanwhile
            open_pack = self._open.get(t)
            if open_pack is None:
                open_pack = self._open[t] = OpenPack(t)
            self._pending[k] = (open_pack, open_pack.add(blob_id, stored, ulen))
            if open_pack.size >= self.pack_size:
                full = self._open.pop(t)
                # Back-pressure: a saver waits here while the upload thread is behind.
                while self._inflight >= self._max_inflight and self._error is None:
                    self._cond.wait()
                self._inflight += 1
                if self._uploader is None:
                    self._uploader = ThreadPoolExecutor(self._upload_threads, thread_name_prefix="upload")
                uploader = self._uploader
            self._cond.notify_all()
        if full is not None and uploader is not None:
            # Errors are kept by _upload and raised by the next save_blob or flush.
            uploader.submit(self._upload, full)
        return True

    def pending_blob(self, t: BlobType, blob_id: bytes) -> tuple[bytes, PackedBlob] | None:
        """Stored bytes and entry of a blob not yet in the index, or None if unknown."""
        k = (t, blob_id)
        with self._cond:
            while k in self._reserved:
                self._cond.wait()
            found = self._pending.get(k)
            if found is None:
                return None
            open_pack, i = found
            return open_pack.stored(i), open_pack.blobs[i]

    def _upload(self, open_pack: OpenPack) -> None:
        try:
            with self._cond:
                # Under the lock: pending_blob reads the parts this consumes.
                data = open_pack.seal(self._key)
            pack_id = hash_bytes(data)
            try:
                self._backend.save(FileType.PACK, pack_id.hex(), data)
            except FileExistsError:
                # Same name means same SHA-256 of the content: already stored, if whole. A server
                # killed mid-write can leave a cut-off file under the final name (rclone serve
                # restic writes in place, and our first try's answer was lost with it): its name
                # is the hash of our bytes, so it is garbage: replace it.
                if self._backend.stat(FileType.PACK, pack_id.hex()) != len(data):
                    self._backend.remove(FileType.PACK, pack_id.hex())
                    self._backend.save(FileType.PACK, pack_id.hex(), data)
            self._index.add_pack(pack_id, open_pack.blobs, new=True)
            if self._on_pack_saved is not None:
                self._on_pack_saved(pack_id, open_pack.blobs)
            with self._cond:
                for b in open_pack.blobs:
                    self._pending.pop((b.type, b.id), None)
                self.packs_written[open_pack.type] += 1
        except BaseException as exc:
            with self._cond:
                if self._error is None:
                    self._error = exc
            raise RepoError(
                f"cannot write a {open_pack.type.value} pack to {self._backend.location()} ({exc}): "
                "check free space and permissions"
            ) from exc
        finally:
            with self._cond:
                self._inflight -= 1
                self._cond.notify_all()

    def flush(self) -> None:
        """Seal and upload every open pack, then wait for the upload thread's packs."""
        with self._cond:
            self._raise_sticky()
            packs = [p for p in self._open.values() if p.blobs]
            self._open.clear()
            self._inflight += len(packs)
        first_error: BaseException | None = None
        for p in packs:
            try:
                self._upload(p)
            except RepoError as exc:
                first_error = first_error or exc
        with self._cond:
            while self._inflight > 0:
                self._cond.wait()
        # The upload thread is idle now; the next full pack starts a new one, so no thread
        # outlives the session that needed it.
        self.close()
        if first_error is not None:
            raise first_error
        with self._cond:
            self._raise_sticky()

    def close(self) -> None:
        """Wait for packs already handed to the upload thread and end it (open packs are dropped)."""
        with self._cond:
            uploader, self._uploader = self._uploader, None
        if uploader is not None:
            uploader.shutdown(wait=True)

    def pending_count(self) -> int:
        """Blobs saved but not yet in an uploaded pack."""
        with self._cond:
            return len(self._pending) + len(self._reserved)
