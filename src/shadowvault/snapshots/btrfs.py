"""btrfs provider: a read-only snapshot of the subvolume that holds the source.

The snapshot is placed inside the subvolume itself as
``<subvolume>/.<prefix>-snap-<session>``: that directory is on the same file
system by construction and is reachable through the same mount, whichever
subvolume happens to be mounted. Snapshots are not recursive, so nested
subvolumes show up as empty directories inside the snapshot.
"""

from __future__ import annotations

import os
import shutil
import stat
from contextlib import AbstractContextManager
from pathlib import Path

from shadowvault.errors import SnapshotError
from shadowvault.snapshots.commands import Runner, check, first_error_line, run_command
from shadowvault.snapshots.interface import SnapshotProvider, same_path, translate_under
from shadowvault.snapshots.model import Handle, Unsupported, Volume, split_session
from shadowvault.snapshots.mounts import MountEntry, find_mount, read_mounts

__all__ = ["BtrfsProvider", "map_to_mounts", "parse_subvolume_list", "snapshot_dir_name"]

#: statfs f_type of btrfs; mountinfo's type name is used, this documents the match.
BTRFS_SUPER_MAGIC = 0x9123683E
#: Inode number of every subvolume's root directory (BTRFS_FIRST_FREE_OBJECTID).
SUBVOLUME_ROOT_INO = 256
_FS_TREE = "<FS_TREE>/"


def snapshot_dir_name(prefix: str, session: str) -> str:
    """Directory name of this session's snapshot inside the subvolume."""
    return f".{prefix}-snap-{session}"


def parse_subvolume_list(text: str) -> list[str]:
    """Paths (relative to the file system's top level) from ``btrfs subvolume list -a``."""
    paths: list[str] = []
    for line in text.splitlines():
        head, sep, path = line.partition(" path ")
        if not sep or not head.startswith("ID "):
            continue
        paths.append(path.removeprefix(_FS_TREE))
    return paths


def map_to_mounts(fs_path: str, mounts: list[MountEntry]) -> list[Path]:
    """Where a subvolume path (relative to the top level) is reachable through ``mounts``.

    Each mount shows the part of the file system below its mountinfo root, so a
    path is reachable through a mount when it lies below that root.
    """
    found: list[Path] = []
    for mount in mounts:
        root = mount.root.strip("/")
        if not root:
            found.append(mount.mount_point / fs_path)
        elif fs_path.startswith(root + "/"):
            found.append(mount.mount_point / fs_path[len(root) + 1 :])
    return found


class BtrfsProvider:
    """Read-only btrfs subvolume snapshots via the ``btrfs`` program."""

    def __init__(self, runner: Runner = run_command) -> None:
        self._run = runner

    @property
    def name(self) -> str:
        """Provider name."""
        return "btrfs"

    def supports(self, path: Path) -> Volume | Unsupported:
        """The subvolume holding ``path``, found by walking up to its inode-256 root."""
        mount = find_mount(path)
        if mount is None or mount.fs_type != "btrfs":
            kind = mount.fs_type if mount else "unknown"
            where = mount.mount_point if mount else path
            return Unsupported(self.name, f"{where} is {kind}, not btrfs")
        if mount.read_only:
            return Unsupported(self.name, f"{mount.mount_point} is mounted read-only")
        if shutil.which("btrfs") is None:
            return Unsupported(self.name, "the btrfs program is not installed")
        subvolume = self._subvolume_root(path, mount.mount_point)
        if subvolume is None:
            return Unsupported(self.name, f"no subvolume root is reachable above {path} (bind mount?)")
        return Volume(
            provider=self.name,
            key=str(subvolume),
            root=subvolume,
            fs_type="btrfs",
            source=mount.source,
            details=(("mount_point", str(mount.mount_point)),),
        )

    @staticmethod
    def _subvolume_root(path: Path, mount_point: Path) -> Path | None:
        current = path
        while True:
            try:
                st = os.lstat(current)
            except OSError:
                return None
            if st.st_ino == SUBVOLUME_ROOT_INO and stat.S_ISDIR(st.st_mode):
                return current
            if current == mount_point or current.parent == current:
                return None
            current = current.parent

    def create(self, volume: Volume, prefix: str, session: str) -> Handle:
        """``btrfs subvolume snapshot -r SUBVOL SUBVOL/.<prefix>-snap-<session>``."""
        target = volume.root / snapshot_dir_name(prefix, session)
        result = self._run(["btrfs", "subvolume", "snapshot", "-r", str(volume.root), str(target)])
        if not result.ok:
            raise SnapshotError(f"btrfs snapshot of {volume.root} failed: {first_error_line(result)}")
        return Handle(provider=self.name, name=str(target), session=session, path=target, volume=volume)

    def translate(self, handle: Handle, path: Path) -> Path:
        """Live path → same path inside the snapshot."""
        if handle.volume is None or handle.path is None:
            raise SnapshotError(f"snapshot {handle.name} has no volume to translate against")
        return translate_under(handle.volume.root, handle.path, path)

    def open_file(self, handle: Handle, path: Path) -> AbstractContextManager[Path]:
        """The snapshot is read-only already: read the translated path directly."""
        return same_path(self.translate(handle, path))

    def delete(self, handle: Handle) -> None:
        """``btrfs subvolume delete``; a snapshot that is already gone is fine."""
        if handle.path is None:
            raise SnapshotError(f"btrfs snapshot {handle.name} is not reachable through any mount")
        if not os.path.lexists(handle.path):
            return
        check(self._run(["btrfs", "subvolume", "delete", str(handle.path)]), f"deleting {handle.path}")

    def list_stale(self, prefix: str) -> list[Handle]:
        """Our snapshots on every mounted btrfs file system (one listing per file system)."""
        marker = snapshot_dir_name(prefix, "")
        by_device: dict[str, list[MountEntry]] = {}
        for mount in read_mounts():
            if mount.fs_type == "btrfs":
                by_device.setdefault(mount.device, []).append(mount)
        handles: list[Handle] = []
        for mounts in by_device.values():
            result = self._run(["btrfs", "subvolume", "list", "-a", str(mounts[0].mount_point)])
            if not result.ok:
                continue
            for fs_path in parse_subvolume_list(result.stdout):
                base = fs_path.rsplit("/", 1)[-1]
                parsed = split_session(base[len(marker) :]) if base.startswith(marker) else None
                if parsed is None:
                    continue
                reachable = [p for p in map_to_mounts(fs_path, mounts) if os.path.lexists(p)]
                where = reachable[0] if reachable else None
                name = str(where) if where else f"{mounts[0].source}:/{fs_path}"
                handles.append(Handle(self.name, name, parsed[0], path=where))
        return handles


_: SnapshotProvider = BtrfsProvider()
