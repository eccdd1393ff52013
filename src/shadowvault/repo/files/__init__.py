"""One module per on-disk file type of a restic repository (pure encode/decode, no I/O).

- ``config``   — ``RepoConfig``: version, repository id, chunker polynomial.
- ``key``      — ``KeyFile``: scrypt parameters + encrypted master key (plain JSON).
- ``pack``     — ``PackedBlob`` and the encrypted pack header at the end of a pack.
- ``index``    — ``IndexFile``: packs and the blobs they hold.
- ``tree``     — ``Node``/``Tree``: directory listings stored as tree blobs.
- ``snapshot`` — ``Snapshot``: a backup's root tree plus who/when/what.
- ``jsonfmt``  — Go-compatible JSON and RFC 3339 nanosecond timestamps.
"""

from shadowvault.repo.files.config import RepoConfig
from shadowvault.repo.files.index import IndexFile
from shadowvault.repo.files.key import KeyFile
from shadowvault.repo.files.pack import PackedBlob
from shadowvault.repo.files.snapshot import Snapshot
from shadowvault.repo.files.tree import Node, Tree

__all__ = ["IndexFile", "KeyFile", "Node", "PackedBlob", "RepoConfig", "Snapshot", "Tree"]
