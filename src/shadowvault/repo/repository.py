"""The repository facade: open/init with a password, save and load blobs, trees, snapshots.

Write order follows restic's invariants: packs first, then the index files
naming them (``flush``), and only then a snapshot that references their blobs.
An interrupted session therefore leaves, at worst, packs no index mentions,
which ``restic check`` accepts.
"""

from __future__ import annotations

import contextlib
import functools
import getpass
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from shadowvault import interrupts
from shadowvault.errors import (
    IntegrityError,
    RepoError,
    RepoNotFoundError,
    UnsupportedRepoError,
    WrongPasswordError,
)
from shadowvault.repo import compression, crypto
from shadowvault.repo.backends.base import Backend, FileType, exists, is_remote, upload_connections
from shadowvault.repo.backends.local import LocalBackend
from shadowvault.repo.files import key
from shadowvault.repo.files.config import MAX_VERSION, MIN_VERSION, RepoConfig
from shadowvault.repo.files.index import split_into_files
from shadowvault.repo.files.pack import PackedBlob
from shadowvault.repo.files.snapshot import Snapshot
from shadowvault.repo.files.tree import Tree
from shadowvault.repo.forkread import ForkedTrees
from shadowvault.repo.ids import BlobType, hash_bytes, is_hex_id, short
from shadowvault.repo.index import MasterIndex
from shadowvault.repo.lock import RepoLock, remove_stale_locks
from shadowvault.repo.packer import DEFAULT_PACK_SIZE, BlobSaver
from shadowvault.repo.treeahead import WINDOW, TreeAhead

if TYPE_CHECKING:
    from shadowvault.repo.tempfiles import TempFile

PACK_READ_WINDOW = 4 * 1024 * 1024
"""Most bytes ``load_pack_blobs`` reads from a pack at once."""
_MAX_READ_GAP = 256 * 1024
BlobDecoder = Callable[[bytes | memoryview, PackedBlob, str], bytes]
"""``decode(stored, entry, pack_name)`` → the blob's verified plaintext (``Repository.blob_decoder``)."""


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return ""


class Repository:
    """An open repository: master key, config, master index and the blob saver."""

    def __init__(self, backend: Backend, master: crypto.Key, cfg: RepoConfig, *, pack_size: int) -> None:
        """Use ``Repository.open`` or ``Repository.init`` instead."""
        self.backend = backend
        self.key = master
        self.cfg = cfg
        self.index = MasterIndex()
        self._index_lock = threading.Lock()
        self._index_loaded = False
        self.pack_size = pack_size
        self._saver = BlobSaver(master, backend, self.index, pack_size=pack_size, compress=cfg.version >= 2)
        self._locks: list[RepoLock] = []
        # Over a network each tree read is a round trip: read a pack's trees together there.
        self._trees_ahead = TreeAhead() if is_remote(backend) else None
        self.key_file_json: bytes | None = None
        """The key file that opened the repository (its scrypt salt and parameters are what the CLI
        remembers to start deriving early next time, ``kdfcache``)."""

    # ---- creation and opening ------------------------------------------------------------

    @classmethod
    def init(
        cls,
        backend: Backend,
        password: str,
        *,
        pack_size: int = DEFAULT_PACK_SIZE,
        kdf: tuple[int, int, int] | None = None,
        version: int = MAX_VERSION,
    ) -> Repository:
        """Create a new repository (layout, key file, config); ``RepoError`` if one exists."""
        if not MIN_VERSION <= version <= MAX_VERSION:
            raise UnsupportedRepoError(f"repository version {version} cannot be created: use 1 or 2")
        if exists(backend, FileType.CONFIG, "config"):
            raise RepoError(
                f"a repository already exists at {backend.location()}: open it, or choose another location"
            )
        params = crypto.KdfParams(*kdf) if kdf is not None else crypto.KdfParams()
        try:
            params.check()
        except ValueError as exc:
            raise RepoError(f"invalid scrypt parameters {kdf}: {exc}") from exc
        try:
            backend.create()
        except OSError as exc:
            raise RepoError(
                f"cannot create a repository at {backend.location()} ({exc}): check the path"
            ) from exc
        master = crypto.Key.random()
        kf = key.create(master, password, params, username=_user(), hostname=socket.gethostname())
        raw = kf.to_json()
        cfg = RepoConfig.new(version)
        # Key and config together: a key without a config would make the next init add a second
        # key with the same password and another master key.
        with interrupts.held():
            backend.save(FileType.KEY, hash_bytes(raw).hex(), raw)
            # The config is never compressed: its version must be readable first.
            backend.save(FileType.CONFIG, "config", crypto.seal(master, cfg.to_json()))
        repo = cls(backend, master, cfg, pack_size=pack_size)
        repo._index_loaded = True
        repo.key_file_json = raw
        return repo

    @classmethod
    def open(cls, backend: Backend, password: str, *, pack_size: int = DEFAULT_PACK_SIZE) -> Repository:
        """Open with a password: RepoNotFoundError, WrongPasswordError, UnsupportedRepoError, RepoError."""
        loc = backend.location()
        try:
            backend.stat(FileType.CONFIG, "config")
        except FileNotFoundError:
            raise RepoNotFoundError(
                f"no repository at {loc}: run `shadowvault init` to create one, or check the path"
            ) from None
        except OSError as exc:
            raise RepoError(
                f"cannot read the repository at {loc} ({exc}): check the path and permissions"
            ) from exc
        master, key_json = cls._find_master_key(backend, password)
        try:
            sealed = backend.load(FileType.CONFIG, "config")
            plain = crypto.open_(master, sealed)
            cfg = RepoConfig.from_json(compression.decode_unpacked(plain))
        except crypto.CiphertextError:
            raise IntegrityError(
                f"config of the repository at {loc} fails its MAC: it is corrupt or from another repository"
            ) from None
        except (OSError, ValueError) as exc:
            raise RepoError(
                f"config of the repository at {loc} is unreadable ({exc}): restore it from a copy"
            ) from exc
        if not MIN_VERSION <= cfg.version <= MAX_VERSION:
            raise UnsupportedRepoError(
                f"repository at {loc} has format version {cfg.version}; this shadowvault reads versions "
                f"{MIN_VERSION}-{MAX_VERSION}: use a newer shadowvault"
            )
        repo = cls(backend, master, cfg, pack_size=pack_size)
        repo.key_file_json = key_json
        return repo

    @staticmethod
    def _find_master_key(backend: Backend, password: str) -> tuple[crypto.Key, bytes]:
        loc = backend.location()
        wrong = 0
        broken: list[str] = []
        for name, _size in sorted(backend.list(FileType.KEY)):
            if not is_hex_id(name):
                continue
            try:
                raw = backend.load(FileType.KEY, name)
                return key.open_master(key.KeyFile.from_json(raw), password), raw
            except crypto.CiphertextError:
                wrong += 1
            except (ValueError, OSError) as exc:
                broken.append(f"keys/{short(name)}: {exc}")
        if wrong:
            raise WrongPasswordError(
                f"wrong password for the repository at {loc}: no key file opens with it; "
                "check SHADOWVAULT_PASSWORD or --password-file"
            )
        if broken:
            raise RepoError(
                f"key file of the repository at {loc} is unreadable ({'; '.join(broken)}): "
                "restore the keys/ directory from a copy"
            )
        raise RepoError(f"repository at {loc} has no key files: restore the keys/ directory from a copy")

    @property
    def config(self) -> dict[str, Any]:
        """``{"version", "id", "chunker_polynomial"}`` as in the config file."""
        return self.cfg.to_dict()

    @property
    def version(self) -> int:
        """Repository format version (1 or 2)."""
        return self.cfg.version

    def location(self) -> str:
        """Where the repository is."""
        return self.backend.location()

    def parallel_reads(self) -> int:
        """How many reads are worth keeping in flight: the connection count of a remote backend
        (each read there is mostly waiting for the network), 1 for a local one."""
        return upload_connections(self.backend) if is_remote(self.backend) else 1

    # ---- unpacked files (index, snapshot, lock) --------------------------------------------

    def save_unpacked(self, ft: FileType, json_bytes: bytes) -> bytes:
        """Encrypt (and in v2 compress) a JSON document, store it under its hash; returns the id."""
        sealed = crypto.seal(self.key, compression.encode_unpacked(json_bytes, self.cfg.version))
        file_id = hash_bytes(sealed)
        self.backend.save(ft, file_id.hex(), sealed)
        return file_id

    def load_unpacked(self, ft: FileType, name: str) -> bytes:
        """Load, verify (name = SHA-256 of the bytes, MAC), decrypt and decode a JSON document."""
        data = self.backend.load(ft, name)
        what = f"{ft.value} file {short(name)} in {self.location()}"
        if hash_bytes(data).hex() != name:
            raise IntegrityError(
                f"{what} does not match its name (SHA-256): it is corrupt, restore it from a copy"
            )
        try:
            return compression.decode_unpacked(crypto.open_(self.key, data))
        except crypto.CiphertextError:
            raise IntegrityError(f"{what} fails its MAC: it is corrupt, restore it from a copy") from None
        except ValueError as exc:
            raise IntegrityError(f"{what} cannot be decoded ({exc}): restore it from a copy") from exc

    def list_files(self, ft: FileType) -> Iterator[tuple[str, int]]:
        """Names and sizes of the files of one type (invalid names skipped)."""
        for name, size in self.backend.list(ft):
            if ft is FileType.CONFIG or is_hex_id(name):
                yield name, size

    def remove_file(self, ft: FileType, name: str) -> None:
        """Delete one file."""
        self.backend.remove(ft, name)

    def resolve(self, ft: FileType, ref: str) -> str:
        """Full file name from a unique hex prefix; RepoError when none or several match."""
        if ft is FileType.CONFIG:
            return "config"
        matches = [n for n, _ in self.list_files(ft) if n.startswith(ref.lower())] if ref else []
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise RepoError(f"no {ft.value} file matches {ref!r} in {self.location()}: check the id")
        raise RepoError(
            f"{ft.value} id prefix {ref!r} is ambiguous ({len(matches)} matches): give more digits"
        )

    def load_file(self, ft: FileType, name: str) -> bytes:
        """Plaintext JSON of config/key/index/snapshot/lock (for ``cat``); ``name`` may be a prefix."""
        if ft is FileType.CONFIG:
            return compression.decode_unpacked(
                crypto.open_(self.key, self.backend.load(FileType.CONFIG, "config"))
            )
        full = self.resolve(ft, name)
        if ft is FileType.KEY:
            return self.backend.load(ft, full)
        if ft is FileType.PACK:
            raise RepoError("pack files are binary: load blobs by id instead")
        return self.load_unpacked(ft, full)

    # ---- index --------------------------------------------------------------------------

    def load_index(self, *, on_error: Callable[[str, RepoError], None] | None = None) -> None:
        """Read every index file not loaded yet into the master index.

        A damaged index file raises IntegrityError, unless ``on_error`` is given:
        then it is called with the file name and the error, and the file skipped.
        """
        with self._index_lock:
            for name, _size in list(self.list_files(FileType.INDEX)):
                index_id = bytes.fromhex(name)
                if index_id in self.index.index_files:
                    continue
                try:
                    raw = self.load_unpacked(FileType.INDEX, name)
                    try:
                        self.index.add_index_json(index_id, raw)
                    except ValueError as exc:
                        raise IntegrityError(
                            f"index file {short(name)} in {self.location()} is malformed ({exc}): "
                            "rebuild the index with `restic repair index`"
                        ) from exc
                except RepoError as exc:
                    if on_error is None:
                        raise
                    on_error(name, exc)
                    continue
            self._index_loaded = True

    def reset_index(self) -> None:
        """Forget the loaded index (after prune rewrote it); the next use reloads it.

        Blobs saved but not flushed would be lost: flush first.
        """
        with self._index_lock:
            if self._saver.pending_count():
                raise RepoError("cannot reset the index while blobs are unflushed: call flush() first")
            self.index = MasterIndex()
            self._saver = BlobSaver(
                self.key, self.backend, self.index, pack_size=self.pack_size, compress=self.cfg.version >= 2
            )
            self._index_loaded = False

    def _ensure_index(self) -> None:
        if not self._index_loaded:
            self.load_index()

    def _write_index(self) -> None:
        new = self.index.take_new_packs()
        if not new:
            return
        try:
            for index_file in split_into_files(new):
                index_id = self.save_unpacked(FileType.INDEX, index_file.to_json())
                self.index.index_files.add(index_id)
        except BaseException:
            self.index.restore_new_packs(pid for pid, _ in new)
            raise

    # ---- blobs --------------------------------------------------------------------------

    def has_blob(self, t: BlobType, blob_id: bytes) -> bool:
        """True for indexed blobs and for blobs saved in this session but not flushed yet."""
        self._ensure_index()
        return self._saver.has(t, blob_id)

    def save_blob(
        self, t: BlobType, data: bytes | bytearray | memoryview, blob_id: bytes | None = None
    ) -> tuple[bytes, bool]:
        """Thread-safe: store a blob unless known; returns (SHA-256 id, added)."""
        self._ensure_index()
        return self._saver.save_blob(t, data, blob_id)

    def encode_blob(self, data: bytes | bytearray | memoryview) -> tuple[bytes, bytes, int | None]:
        """Pure, for a forked reader: a data blob's id, stored (compressed, encrypted) form and
        uncompressed length (None when stored uncompressed), for ``save_encoded_blob``."""
        return self._saver.encode(data)

    def save_encoded_blob(self, blob_id: bytes, stored: bytes, uncompressed_length: int | None) -> bool:
        """Thread-safe: store a data blob ``encode_blob`` encoded, unless known; returns whether added."""
        self._ensure_index()
        return self._saver.save_encoded(BlobType.DATA, blob_id, stored, uncompressed_length)

    def _stored_blob(self, t: BlobType, blob_id: bytes) -> tuple[bytes, PackedBlob, str]:
        self._ensure_index()
        entry = self.index.lookup(t, blob_id)
        if entry is None:
            pending = self._saver.pending_blob(t, blob_id)
            if pending is None:
                raise RepoError(
                    f"{t.value} blob {blob_id.hex()} is not in the index of {self.location()}: "
                    "run `shadowvault check`"
                )
            return pending[0], pending[1], "(unsaved pack)"
        b = entry.blob
        try:
            data = self.backend.load(FileType.PACK, entry.pack_id.hex(), b.offset, b.length)
        except (OSError, EOFError) as exc:
            raise RepoError(
                f"cannot read {t.value} blob {short(blob_id)} from pack {entry.pack_id.hex()} ({exc}): "
                "run `shadowvault check`"
            ) from exc
        return data, b, entry.pack_id.hex()

    def load_blob(self, t: BlobType, blob_id: bytes) -> bytes:
        """Plaintext of a blob, verified against its SHA-256 (IntegrityError naming blob and pack)."""
        stored, entry, pack_name = self._stored_blob(t, blob_id)
        return decode_blob(self.key, stored, entry, pack_name)

    def pack_location(self, t: BlobType, blob_id: bytes) -> tuple[str, PackedBlob] | None:
        """Pack name and header entry of an indexed blob; None when the index lacks it.

        Blobs saved in this session but not flushed yet are not in the index: read
        those with ``load_blob``.
        """
        self._ensure_index()
        entry = self.index.lookup(t, blob_id)
        return None if entry is None else (entry.pack_id.hex(), entry.blob)

    def load_pack_blobs(
        self, pack_name: str, entries: Sequence[PackedBlob], *, window: int = PACK_READ_WINDOW
    ) -> Iterator[tuple[PackedBlob, bytes]]:
        """Plaintexts of several blobs of one pack, in pack order, each verified like ``load_blob``.

        Neighbouring blobs are read together, one range of at most ``window`` bytes at a
        time (a larger blob alone), so reading a pack costs a few reads instead of one per
        blob while memory stays bounded. ``entries`` come from ``pack_location``.
        """
        for start, data, blobs in self.load_pack_ranges(pack_name, entries, window=window):
            view = memoryview(data)
            for b in blobs:
                yield (
                    b,
                    decode_blob(self.key, view[b.offset - start : b.offset - start + b.length], b, pack_name),
                )

    def load_pack_ranges(
        self, pack_name: str, entries: Sequence[PackedBlob], *, window: int = PACK_READ_WINDOW
    ) -> Iterator[tuple[int, bytes, list[PackedBlob]]]:
        """The stored bytes behind ``entries``, not decoded: (offset in the pack, bytes, the blobs in
        them in pack order) per range read, ranges chosen as ``load_pack_blobs`` describes. For a
        reader that decodes elsewhere (``blob_decoder``), such as a restore's writer processes."""
        for start, length, blobs in pack_ranges(entries, window):
            try:
                data = self.backend.load(FileType.PACK, pack_name, start, length)
            except (OSError, EOFError) as exc:
                raise pack_read_error(pack_name, start, length, exc) from exc
            yield start, data, blobs

    def forked_trees(self) -> ForkedTrees | None:
        """Tree reads and index lookups for a process forked from this one (``repo.forkread``), once
        the index is loaded; None unless packs are read straight from a local directory."""
        if type(self.backend) is not LocalBackend:
            return None
        self._ensure_index()
        return ForkedTrees(self.backend, self.index, self.key)

    def pack_file(self, pack_name: str) -> str | None:
        """The local file of a pack when reads go straight to a directory (no rate limit or other
        layer in between), for a reader in another process; None otherwise."""
        if type(self.backend) is LocalBackend:
            return str(self.backend.path(FileType.PACK, pack_name))
        return None

    def blob_decoder(self) -> BlobDecoder:
        """``decode(stored, entry, pack_name)`` → verified plaintext with this repository's key (what
        ``load_pack_blobs`` does per blob), usable in a forked process."""
        return functools.partial(decode_blob, self.key)

    def blob_length(self, t: BlobType, blob_id: bytes) -> int:
        """Plaintext length from the index (or the pending pack)."""
        self._ensure_index()
        entry = self.index.lookup(t, blob_id)
        if entry is not None:
            return entry.blob.plaintext_length
        pending = self._saver.pending_blob(t, blob_id)
        if pending is None:
            raise RepoError(f"{t.value} blob {blob_id.hex()} is not in the index of {self.location()}")
        return pending[1].plaintext_length

    def flush(self) -> None:
        """Upload every open pack, then write index files for the packs new since the last flush."""
        self._saver.flush()
        self._write_index()

    @property
    def data_packs_written(self) -> int:
        """Data packs this session has stored so far."""
        return self._saver.packs_written[BlobType.DATA]

    def unindexed_packs(self) -> int:
        """Packs already uploaded whose index file is not written yet."""
        return self.index.new_pack_count()

    def checkpoint(self) -> None:
        """Write index files for the packs uploaded so far, leaving open packs alone.

        A session killed later leaves these packs indexed, so the next backup reuses them
        instead of uploading the data again.
        """
        self._write_index()

    # ---- trees and snapshots -----------------------------------------------------------

    def save_tree(self, tree: Tree) -> bytes:
        """Store a tree as a TREE blob; returns its id."""
        return self.save_blob(BlobType.TREE, tree.to_json())[0]

    def load_tree(self, tree_id: bytes) -> Tree:
        """Load and parse a tree blob."""
        raw = self._tree_json(tree_id)
        try:
            return Tree.from_json(raw)
        except ValueError as exc:
            raise IntegrityError(
                f"tree {short(tree_id)} is malformed ({exc}): run `shadowvault check`"
            ) from exc

    def _tree_json(self, tree_id: bytes) -> bytes:
        ahead = self._trees_ahead
        if ahead is None:
            return self.load_blob(BlobType.TREE, tree_id)
        raw = ahead.take(tree_id)
        if raw is not None:
            return raw
        self._ensure_index()
        entry = self.index.lookup(BlobType.TREE, tree_id)
        if entry is None:
            return self.load_blob(BlobType.TREE, tree_id)
        lo, hi = entry.blob.offset - WINDOW, entry.blob.offset + entry.blob.length + WINDOW
        near = [
            b
            for b in self.index.pack_blobs(entry.pack_id)
            if b.type is BlobType.TREE and b.offset >= lo and b.offset + b.length <= hi
        ]
        found: bytes | None = None
        for b, plain in self.load_pack_blobs(entry.pack_id.hex(), near):
            if b.id == tree_id:
                found = plain
            else:
                ahead.keep(b.id, plain)
        return found if found is not None else self.load_blob(BlobType.TREE, tree_id)

    def save_snapshot(self, s: Snapshot) -> str:
        """Store a snapshot file; returns its hex id. Call ``flush`` first."""
        return self.save_unpacked(FileType.SNAPSHOT, s.to_json()).hex()

    def load_snapshot(self, snapshot_id: str) -> Snapshot:
        """Load one snapshot by full hex id."""
        raw = self.load_unpacked(FileType.SNAPSHOT, snapshot_id)
        try:
            return Snapshot.from_json(raw)
        except ValueError as exc:
            raise IntegrityError(f"snapshot {short(snapshot_id)} is malformed ({exc}): remove it") from exc

    def list_snapshots(self) -> list[tuple[str, Snapshot]]:
        """All snapshots as (hex id, Snapshot), oldest first."""
        found = [(name, self.load_snapshot(name)) for name, _ in self.list_files(FileType.SNAPSHOT)]
        found.sort(key=lambda item: (item[1].time, item[0]))
        return found

    def find_snapshot(self, ref: str) -> tuple[str, Snapshot]:
        """``"latest"``, a full hex id or a unique prefix; RepoError otherwise."""
        if ref == "latest":
            snaps = self.list_snapshots()
            if not snaps:
                raise RepoError(
                    f"the repository at {self.location()} has no snapshots yet: run a backup first"
                )
            return snaps[-1]
        name = self.resolve(FileType.SNAPSHOT, ref)
        return name, self.load_snapshot(name)

    # ---- locking and closing -------------------------------------------------------------

    @contextlib.contextmanager
    def lock(
        self,
        exclusive: bool = False,
        *,
        refresh_interval: float | None = None,
        recheck_delay: float | None = None,
        meanwhile: Callable[[], None] | None = None,
    ) -> Iterator[None]:
        """Hold a repository lock for the ``with`` block (RepoLockedError on conflict).

        ``meanwhile`` (read-only work such as ``load_index``) runs during the lock's settling
        pause instead of after it.
        """
        kwargs: dict[str, float] = {}
        if refresh_interval is not None:
            kwargs["refresh_interval"] = refresh_interval
        if recheck_delay is not None:
            kwargs["recheck_delay"] = recheck_delay
        held = RepoLock(self, exclusive, **kwargs)
        # Inside the try: an interruption just after acquire() still releases the lock.
        try:
            self._locks.append(held)
            held.acquire(meanwhile)
            yield
        finally:
            held.release()
            if held in self._locks:
                self._locks.remove(held)

    def held_locks(self) -> list[RepoLock]:
        """The locks this object holds right now."""
        return list(self._locks)

    def remove_stale_locks(self) -> list[str]:
        """Delete locks left by dead processes on this host or not refreshed for 30 minutes."""
        return remove_stale_locks(self)

    def remove_stale_temp_files(self) -> list[TempFile]:
        """Delete leftovers of interrupted writes when no other client works here (``repo.tempfiles``)."""
        from shadowvault.repo.tempfiles import remove_stale_temp_files  # it imports this module

        return remove_stale_temp_files(self)

    def close(self) -> None:
        """Release locks still held and the backend. Unflushed blobs are discarded: flush first."""
        self._saver.close()
        for held in list(self._locks):
            held.release()
        self._locks.clear()
        self.backend.close()


def pack_read_error(pack_name: str, start: int, length: int, exc: BaseException) -> RepoError:
    """The error for a pack range that cannot be read."""
    return RepoError(
        f"cannot read {length} bytes at {start} from pack {pack_name} ({exc}): run `shadowvault check`"
    )


def pack_ranges(
    entries: Sequence[PackedBlob], window: int = PACK_READ_WINDOW
) -> list[tuple[int, int, list[PackedBlob]]]:
    """(offset, length, the blobs in it in pack order) of the ranges ``load_pack_blobs`` reads for
    ``entries``: neighbours together up to ``window`` bytes (a larger blob alone), small gaps included."""
    ordered = sorted(entries, key=lambda b: b.offset)
    out: list[tuple[int, int, list[PackedBlob]]] = []
    i = 0
    while i < len(ordered):
        start = ordered[i].offset
        end = start + ordered[i].length
        j = i + 1
        while j < len(ordered):
            nxt = ordered[j]
            # Small gaps (blobs nobody asked for) are cheaper to read than to skip.
            if nxt.offset - end > _MAX_READ_GAP or nxt.offset + nxt.length - start > window:
                break
            end = max(end, nxt.offset + nxt.length)
            j += 1
        out.append((start, end - start, ordered[i:j]))
        i = j
    return out


def decode_blob(master: crypto.Key, stored: bytes | memoryview, entry: PackedBlob, pack_name: str) -> bytes:
    """Decrypt, decompress and hash-check one stored blob; IntegrityError naming blob and pack."""
    what = f"{entry.type.value} blob {entry.id.hex()} in pack {pack_name}"
    try:
        plain = crypto.open_(master, stored)
        if entry.uncompressed_length is not None:
            plain = compression.decompress(plain, entry.uncompressed_length)
    except crypto.CiphertextError:
        raise IntegrityError(
            f"{what} fails its MAC: the pack is corrupt, run `shadowvault check --read-data`"
        ) from None
    except ValueError as exc:
        raise IntegrityError(
            f"{what} does not decompress ({exc}): run `shadowvault check --read-data`"
        ) from exc
    if hash_bytes(plain) != entry.id:
        raise IntegrityError(f"{what} does not match its SHA-256: run `shadowvault check --read-data`")
    return plain
