"""Reading a local repository's trees from a forked process.

A forked child has only the thread that forked it: a lock another thread of the parent held at
that moment (the descriptor cache of the local backend, the packer's condition, a connection pool)
stays held in the child forever. So what a forked worker reads goes through this, which takes no
lock and opens no connection: index lookups (a dictionary the child has a copy of), ``pread`` on
the pack files of a local repository, and the blob's verification as everywhere else
(``decode_blob``). Remote repositories have no such path (their clients are not fork-safe).
"""

from __future__ import annotations

import os

from shadowvault.repo.backends.base import FileType
from shadowvault.repo.backends.local import LocalBackend
from shadowvault.repo.crypto import Key
from shadowvault.repo.files.tree import Tree
from shadowvault.repo.ids import BlobType, short
from shadowvault.repo.index import MasterIndex

__all__ = ["ForkedTrees"]

_OPEN_LIMIT = 64


class ForkedTrees:
    """Trees and index lookups of a local repository, for one forked process (not thread-safe)."""

    def __init__(self, backend: LocalBackend, index: MasterIndex, key: Key) -> None:
        self._backend = backend
        self._index = index
        self._key = key
        self._fds: dict[bytes, int] = {}

    def has_data(self, blob_id: bytes) -> bool:
        """True when the data blob is indexed (blobs saved after the fork are not seen: a caller
        must treat False as "cannot tell")."""
        return self._index.has(BlobType.DATA, blob_id)

    def load_tree(self, tree_id: bytes) -> Tree:
        """The parsed tree; ``LookupError`` when it is not indexed, ``OSError`` when it cannot be
        read, ``RepoError`` (``IntegrityError``) or ``ValueError`` when it is damaged."""
        # Imported here: repo.repository imports this module.
        from shadowvault.repo.repository import decode_blob

        entry = self._index.lookup(BlobType.TREE, tree_id)
        if entry is None:
            raise LookupError(f"tree {short(tree_id)} is not in the index")
        blob = entry.blob
        fd = self._fd(entry.pack_id)
        stored = os.pread(fd, blob.length, blob.offset)
        if len(stored) != blob.length:
            raise OSError(f"pack {entry.pack_id.hex()} is shorter than the index says")
        return Tree.from_json(decode_blob(self._key, stored, blob, entry.pack_id.hex()))

    def _fd(self, pack_id: bytes) -> int:
        fd = self._fds.get(pack_id)
        if fd is None:
            if len(self._fds) >= _OPEN_LIMIT:
                self.close()
            path = self._backend.path(FileType.PACK, pack_id.hex())
            fd = self._fds[pack_id] = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        return fd

    def close(self) -> None:
        """Close the pack descriptors opened so far."""
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
