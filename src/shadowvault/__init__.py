"""shadowvault: back up files while they are open, into restic-compatible repositories.

The curated public Python API is listed in ``__all__`` (defined in ``shadowvault.api``); the CLI
is a thin layer over it. Importing this package has no side effects and loads nothing else: the
API's modules are imported on first use of one of its names (the CLI's entry point needs a
light package to start key derivation before its heavy imports).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shadowvault.version import __version__

__all__ = [
    "BackupOptions",
    "BackupResult",
    "ListSink",
    "Repository",
    "RestoreOptions",
    "RestoreResult",
    "Restored",
    "Snapshot",
    "SnapshotFilter",
    "__version__",
    "backup",
    "init_repository",
    "list_snapshots",
    "open_repository",
    "restore",
]

if TYPE_CHECKING:
    from shadowvault.api import (
        BackupOptions,
        BackupResult,
        ListSink,
        Repository,
        Restored,
        RestoreOptions,
        RestoreResult,
        Snapshot,
        SnapshotFilter,
        backup,
        init_repository,
        list_snapshots,
        open_repository,
        restore,
    )


def __getattr__(name: str) -> Any:
    """Load the API on first use of one of its names (PEP 562)."""
    if name in __all__:
        from shadowvault import api

        value = getattr(api, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'shadowvault' has no attribute {name!r}")
