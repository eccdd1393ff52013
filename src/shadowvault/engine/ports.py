"""What the backup engine needs from a repository, declared where it is used.

Like restic's ``archiverRepo``: the backup pipeline depends on this narrow ``typing.Protocol``,
not on the concrete ``repo.Repository`` (which satisfies it: ``mypy --strict`` checks the
assignment at the end of this module). A test double or another store only has to offer these
methods.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from shadowvault.errors import RepoError
from shadowvault.repo import BlobType, Snapshot, TempFile, Tree

__all__ = ["BackupRepo"]


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


if TYPE_CHECKING:
    from shadowvault.repo import Repository

    def _satisfies(r: Repository) -> BackupRepo:
        return r  # mypy --strict fails here when Repository drifts from the protocol
