"""What the backup and restore sessions need from a repository, declared where it is used.

Like restic's ``archiverRepo``: the backup pipeline depends on ``BackupRepo`` and the restore on
``RestoreRepo``, narrow ``typing.Protocol``s, not on the concrete ``repo.Repository`` (which
satisfies both: ``mypy --strict`` checks the assignments at the end of this module). A test
double or another store only has to offer these methods.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Protocol

from shadowvault.errors import RepoError
from shadowvault.repo import BlobType, Snapshot, TempFile, Tree
from shadowvault.repo.files.pack import PackedBlob
from shadowvault.repo.repository import PACK_READ_WINDOW

__all__ = ["BackupRepo", "RestoreRepo"]


class BackupRepo(Protocol):
    """The repository operations a backup session uses."""

    # Housekeeping at the start of a session.
    def remove_stale_locks(self) -> list[str]: ...
    def remove_stale_temp_files(self) -> list[TempFile]: ...

    # Finding the parent snapshot and reading its trees.
    def location(self) -> str: ...
    def load_index(self, *, on_error: Callable[[str, RepoError], None] | None = None) -> None: ...
    def list_snapshots(self) -> list[tuple[str, Snapshot]]: ...
    def find_snapshot(self, ref: str) -> tuple[str, Snapshot]: ...
    def load_tree(self, tree_id: bytes) -> Tree: ...

    # Saving: blobs from worker threads, trees, index checkpoints, the snapshot.
    def has_blob(self, t: BlobType, blob_id: bytes) -> bool: ...
    def save_blob(
        self, t: BlobType, data: bytes | bytearray | memoryview, blob_id: bytes | None = None
    ) -> tuple[bytes, bool]: ...
    def save_tree(self, tree: Tree) -> bytes: ...
    def unindexed_packs(self) -> int: ...
    def checkpoint(self) -> None: ...
    def flush(self) -> None: ...
    def save_snapshot(self, s: Snapshot) -> str: ...
    @property
    def data_packs_written(self) -> int: ...


class RestoreRepo(Protocol):
    """The repository operations a restore session uses (reads only)."""

    def find_snapshot(self, ref: str) -> tuple[str, Snapshot]: ...
    def load_tree(self, tree_id: bytes) -> Tree: ...
    def pack_location(self, t: BlobType, blob_id: bytes) -> tuple[str, PackedBlob] | None: ...
    def blob_length(self, t: BlobType, blob_id: bytes) -> int: ...
    def load_blob(self, t: BlobType, blob_id: bytes) -> bytes: ...
    def load_pack_blobs(
        self, pack_name: str, entries: Sequence[PackedBlob], *, window: int = PACK_READ_WINDOW
    ) -> Iterator[tuple[PackedBlob, bytes]]: ...


if TYPE_CHECKING:
    from shadowvault.repo import Repository

    def _satisfies(r: Repository) -> BackupRepo:
        return r  # mypy --strict fails here when Repository drifts from the protocol

    def _satisfies_restore(r: Repository) -> RestoreRepo:
        return r
