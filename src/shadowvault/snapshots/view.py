"""SnapshotView: one source seen through its volume's snapshot.

The engine walks ``walk_root``, reads what ``open_file`` yields and records
the original paths; ``to_original`` maps a walked path back. For volume
snapshots the walk happens inside the snapshot; for reflink the walk is on the
live tree and only file contents come from a clone made at ``open_file``.
"""

from __future__ import annotations

import os
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING

from shadowvault.errors import SnapshotError
from shadowvault.snapshots.interface import SnapshotProvider
from shadowvault.snapshots.model import Handle

if TYPE_CHECKING:
    from shadowvault.snapshots.session import SnapshotSession

__all__ = ["SnapshotView"]


class SnapshotView:
    """Point-in-time access to one source (made by ``SnapshotSession.view``)."""

    def __init__(
        self,
        source: Path,
        resolved: Path,
        provider: SnapshotProvider,
        handle: Handle,
        session: SnapshotSession | None = None,
    ) -> None:
        self.source = source
        self.handle = handle
        self._resolved = resolved
        self._provider = provider
        self._session = session
        self.walk_root = provider.translate(handle, resolved)

    @property
    def provider(self) -> str:
        """Name of the provider behind this view: "btrfs", "reflink", "lvm", "zfs"."""
        return self._provider.name

    @property
    def internal_paths(self) -> tuple[Path, ...]:
        """Snapshot and work dirs of the whole session (live paths) that a walk should skip."""
        if self._session is not None:
            return self._session.internal_paths
        return (self.handle.path,) if self.handle.path is not None else ()

    def _live(self, original: Path) -> Path:
        # Sources may be given through symlinks; the volume knows only resolved paths.
        try:
            rel = Path(original).relative_to(self.source)
        except ValueError:
            return Path(os.path.abspath(original))
        return self._resolved / rel if rel.parts else self._resolved

    def translate(self, original: Path) -> Path:
        """Where ``original`` (a path under the source) can be stat'ed in this view."""
        return self._provider.translate(self.handle, self._live(original))

    def to_original(self, walked: Path) -> Path:
        """Map a path found under ``walk_root`` back to the original path to record."""
        try:
            rel = Path(walked).relative_to(self.walk_root)
        except ValueError:
            raise SnapshotError(f"{walked} is not under this view's walk root {self.walk_root}") from None
        return self.source / rel if rel.parts else self.source

    def open_file(self, original: Path) -> AbstractContextManager[Path]:
        """Context manager yielding the path to read ``original`` from; raises ``SnapshotError``."""
        return self._provider.open_file(self.handle, self._live(original))

    def __repr__(self) -> str:
        return f"SnapshotView({self.provider}, source={self.source}, walk_root={self.walk_root})"
