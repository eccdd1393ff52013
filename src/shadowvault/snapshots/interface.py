"""The one interface every snapshot provider implements.

A provider answers four questions about volumes and paths and knows nothing of
repositories or open-file handling:

* ``supports(path)``: can the volume holding ``path`` be snapshotted? Returns a
  ``Volume`` (shared by every path on it) or ``Unsupported`` with the reason.
* ``create(volume, prefix, session)``: make the snapshot; the returned
  ``Handle`` is what ``delete`` needs, even in a later process.
* ``translate(handle, path)``: where a live path's point-in-time content can
  be walked and stat'ed. ``open_file(handle, path)`` is where it can be read:
  the same path for volume snapshots, a fresh per-file clone for reflink.
* ``list_stale(prefix)``: snapshots carrying our prefix, whoever made them; the
  session decides which are stale.

Third-party providers register a factory ``(runner) -> SnapshotProvider``
under the entry-point group ``shadowvault.snapshot_providers``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Protocol, runtime_checkable

from shadowvault.errors import SnapshotError
from shadowvault.snapshots.model import Handle, Unsupported, Volume

__all__ = ["SnapshotProvider", "same_path", "translate_under"]


@runtime_checkable
class SnapshotProvider(Protocol):
    """A way of giving a set of paths a point-in-time view (see module docstring)."""

    @property
    def name(self) -> str:
        """Short provider name: "btrfs", "reflink", "lvm", "zfs"."""
        ...

    def supports(self, path: Path) -> Volume | Unsupported:
        """The volume ``path`` (absolute, resolved) lies on, or why it cannot be snapshotted."""
        ...

    def create(self, volume: Volume, prefix: str, session: str) -> Handle:
        """Create the snapshot of ``volume``; raise ``SnapshotError`` on failure, leaving nothing."""
        ...

    def translate(self, handle: Handle, path: Path) -> Path:
        """Path to walk/stat for live ``path`` under the snapshot's volume."""
        ...

    def open_file(self, handle: Handle, path: Path) -> AbstractContextManager[Path]:
        """Context manager yielding the path to read for live file ``path``."""
        ...

    def delete(self, handle: Handle) -> None:
        """Remove the snapshot and anything mounted or created for it; raise ``SnapshotError``."""
        ...

    def list_stale(self, prefix: str) -> list[Handle]:
        """Every snapshot on this machine whose name carries ``prefix`` (live or not)."""
        ...


def translate_under(live_root: Path, snap_root: Path, path: Path) -> Path:
    """Map ``path`` below ``live_root`` to the same place below ``snap_root``.

    Raises ``SnapshotError`` for paths outside the volume, since reading the
    live file instead would silently break the point-in-time promise.
    """
    try:
        rel = path.relative_to(live_root)
    except ValueError:
        raise SnapshotError(f"{path} is not on the snapshotted volume {live_root}") from None
    return snap_root / rel if rel.parts else snap_root


@contextmanager
def same_path(path: Path) -> Iterator[Path]:
    """``open_file`` for volume snapshots: the translated path needs no per-file work."""
    yield path
