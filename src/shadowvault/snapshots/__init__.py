"""Snapshot providers: point-in-time views of volumes, the Linux counterpart of VSS.

Concepts:

* **Volume** — what one provider snapshots as a unit (a btrfs subvolume, an
  LVM logical volume, a ZFS dataset, or for reflink a mounted file system).
  Sources on the same volume share one snapshot.
* **Provider** (``SnapshotProvider``) — btrfs, zfs, lvm, reflink, plus plugins
  from the entry-point group ``shadowvault.snapshot_providers``. Asked in that
  order whether it ``supports`` a path; the first that does is used.
* **Handle** — one snapshot that exists; named with the prefix
  ``shadowvault`` and the session id ``<pid>-<hex8>`` so a later session can
  recognise and remove what a crashed one left (``list_stale``).
* **SnapshotSession** — the context manager the engine uses: stale cleanup,
  pre/post commands, creation per ``SnapshotMode`` (off / auto / required),
  and removal of everything on exit, Ctrl-C and SIGTERM.
* **SnapshotView** — one source through its snapshot: ``walk_root`` to walk,
  ``open_file(original)`` to read, ``to_original`` to map back. Paths recorded
  in the repository are always the original ones.

External programs run through an injectable ``Runner`` so command-level
behaviour (LVM, ZFS) can be tested without those systems.
"""

from shadowvault.snapshots.commands import CommandResult, Runner, run_command
from shadowvault.snapshots.interface import SnapshotProvider
from shadowvault.snapshots.model import DEFAULT_PREFIX, Handle, SnapshotMode, Unsupported, Volume
from shadowvault.snapshots.registry import ENTRY_POINT_GROUP, ProviderSettings, load_providers
from shadowvault.snapshots.session import SnapshotSession, SnapshotView

__all__ = [
    "DEFAULT_PREFIX",
    "ENTRY_POINT_GROUP",
    "CommandResult",
    "Handle",
    "ProviderSettings",
    "Runner",
    "SnapshotMode",
    "SnapshotProvider",
    "SnapshotSession",
    "SnapshotView",
    "Unsupported",
    "Volume",
    "load_providers",
    "run_command",
]
