"""ZFS provider: ``zfs snapshot DATASET@<prefix>-<session>``, read through ``.zfs``.

A ZFS snapshot needs no mount of its own: every mounted dataset exposes its
snapshots read-only under ``<mountpoint>/.zfs/snapshot/<name>/`` (even when
``snapdir=hidden``; hidden only means it is left out of directory listings).
``findmnt`` names the dataset behind the source's mount.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path

from shadowvault.errors import SnapshotError
from shadowvault.snapshots.commands import Runner, check, first_error_line, run_command
from shadowvault.snapshots.interface import SnapshotProvider, same_path, translate_under
from shadowvault.snapshots.model import Handle, Unsupported, Volume, split_session
from shadowvault.snapshots.mounts import describe_mount

__all__ = ["ZfsProvider", "parse_stale_snapshots", "snapshot_name"]

LIST_SNAPSHOTS_ARGV = ("zfs", "list", "-H", "-t", "snapshot", "-o", "name")


def snapshot_name(prefix: str, session: str) -> str:
    """The part after ``@`` of this session's snapshots."""
    return f"{prefix}-{session}"


def parse_stale_snapshots(text: str, prefix: str) -> list[tuple[str, str]]:
    """(full snapshot name, session) for every ``DATASET@<prefix>-<session>`` in a listing."""
    marker = snapshot_name(prefix, "")
    found: list[tuple[str, str]] = []
    for line in text.splitlines():
        full = line.strip()
        _, sep, snap = full.partition("@")
        if sep and snap.startswith(marker):
            parsed = split_session(snap[len(marker) :])
            if parsed is not None and not parsed[1]:
                found.append((full, parsed[0]))
    return found


class ZfsProvider:
    """Snapshots of ZFS datasets via the ``zfs`` program."""

    def __init__(self, runner: Runner = run_command) -> None:
        self._run = runner

    @property
    def name(self) -> str:
        """Provider name."""
        return "zfs"

    def supports(self, path: Path) -> Volume | Unsupported:
        """The dataset mounted where ``path`` lives, confirmed by ``zfs list``."""
        mount = describe_mount(self._run, path, self.name)
        if isinstance(mount, Unsupported):
            return mount
        if mount.get("FSTYPE") != "zfs":
            return Unsupported(self.name, f"{mount.get('TARGET')} is {mount.get('FSTYPE')}, not zfs")
        dataset = mount.get("SOURCE", "")
        listed = self._run(["zfs", "list", "-H", "-o", "name,mountpoint", dataset])
        if not listed.ok:
            return Unsupported(self.name, f"zfs list {dataset} failed: {first_error_line(listed)}")
        root = Path(mount.get("TARGET", "/"))
        return Volume(self.name, dataset, root, "zfs", dataset)

    def create(self, volume: Volume, prefix: str, session: str) -> Handle:
        """``zfs snapshot DATASET@<prefix>-<session>``; content appears under ``.zfs/snapshot``."""
        snap = snapshot_name(prefix, session)
        full = f"{volume.key}@{snap}"
        result = self._run(["zfs", "snapshot", full])
        if not result.ok:
            raise SnapshotError(f"zfs snapshot {full} failed: {first_error_line(result)}")
        return Handle(self.name, full, session, path=volume.root / ".zfs" / "snapshot" / snap, volume=volume)

    def translate(self, handle: Handle, path: Path) -> Path:
        """Live path → same path under ``<mountpoint>/.zfs/snapshot/<name>``."""
        if handle.volume is None or handle.path is None:
            raise SnapshotError(f"ZFS snapshot {handle.name} has no volume to translate against")
        return translate_under(handle.volume.root, handle.path, path)

    def open_file(self, handle: Handle, path: Path) -> AbstractContextManager[Path]:
        """Read straight from the snapshot directory."""
        return same_path(self.translate(handle, path))

    def delete(self, handle: Handle) -> None:
        """``zfs destroy DATASET@snap`` (it unmounts the .zfs automount itself)."""
        if "@" not in handle.name:
            # Never hand zfs destroy a bare dataset name: that would destroy live data.
            raise SnapshotError(f"refusing to destroy {handle.name!r}: not a snapshot name")
        check(self._run(["zfs", "destroy", handle.name]), f"destroying {handle.name}")

    def list_stale(self, prefix: str) -> list[Handle]:
        """Every snapshot named ``…@<prefix>-<session>`` (no zfs program means none)."""
        listed = self._run(list(LIST_SNAPSHOTS_ARGV))
        if not listed.ok:
            return []
        return [
            Handle(self.name, full, session) for full, session in parse_stale_snapshots(listed.stdout, prefix)
        ]


_: SnapshotProvider = ZfsProvider()
