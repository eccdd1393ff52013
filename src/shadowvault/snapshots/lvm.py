"""LVM provider: ``lvcreate --snapshot`` of the logical volume, mounted read-only.

``findmnt`` names the device behind the source's mount, ``lvs`` says which
VG/LV that is. The snapshot ``<prefix>-<session>-<lv>`` (the LV name keeps two
snapshots of one session apart) is mounted read-only under a private
directory (``/run/shadowvault`` by default: a tmpfs, so a reboot never leaves a
stale mount point). XFS refuses a second mount of the same file-system UUID,
hence ``nouuid``. Thin LVs get a thin snapshot (no size; activation skip off).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

from shadowvault.errors import SnapshotError
from shadowvault.snapshots.commands import Runner, check, first_error_line, run_command
from shadowvault.snapshots.interface import SnapshotProvider, same_path, translate_under
from shadowvault.snapshots.model import Handle, Unsupported, Volume, split_session
from shadowvault.snapshots.mounts import describe_mount

__all__ = [
    "DEFAULT_MOUNT_BASE",
    "DEFAULT_SNAPSHOT_SIZE",
    "LVS_ARGV",
    "LogicalVolume",
    "LvmProvider",
    "find_lv",
    "lvcreate_argv",
    "mount_options",
    "parse_lvs",
    "snapshot_lv_name",
]

DEFAULT_SNAPSHOT_SIZE = "1G"
DEFAULT_MOUNT_BASE = Path("/run/shadowvault")
LVS_ARGV = ("lvs", "--noheadings", "--separator", "|", "-o", "vg_name,lv_name,lv_path,lv_dm_path,lv_attr")
#: LVM's limit on LV names.
_MAX_LV_NAME = 127


@dataclass(frozen=True)
class LogicalVolume:
    """One row of ``lvs``."""

    vg: str
    lv: str
    path: str
    dm_path: str
    attr: str

    @property
    def is_snapshot(self) -> bool:
        """Old-style snapshot (s) or merging snapshot (S): not an origin we snapshot again."""
        return self.attr[:1] in ("s", "S")

    @property
    def is_thin(self) -> bool:
        """Thin volume: its snapshot comes from the pool and takes no size."""
        return self.attr[:1] == "V"


def parse_lvs(text: str) -> list[LogicalVolume]:
    """Rows of ``lvs --noheadings --separator '|' -o vg_name,lv_name,lv_path,lv_dm_path,lv_attr``."""
    rows: list[LogicalVolume] = []
    for line in text.splitlines():
        fields = [f.strip() for f in line.strip().split("|")]
        if len(fields) == 5 and fields[0] and fields[1]:
            rows.append(LogicalVolume(*fields))
    return rows


def find_lv(source: str, volumes: Sequence[LogicalVolume]) -> LogicalVolume | None:
    """The LV whose device is ``source`` (as /dev/VG/LV, /dev/mapper/VG-LV or a resolved dm-N)."""
    real = os.path.realpath(source)
    for lv in volumes:
        names = {lv.path, lv.dm_path}
        if source in names or real in {os.path.realpath(n) for n in names if n}:
            return lv
    return None


def snapshot_lv_name(prefix: str, session: str, lv: str) -> str:
    """LV name of this session's snapshot of ``lv``, within LVM's length limit."""
    head = f"{prefix}-{session}-"
    return head + lv[: _MAX_LV_NAME - len(head)]


def lvcreate_argv(vg: str, lv: str, snap: str, *, size: str, thin: bool) -> list[str]:
    """The ``lvcreate`` call that snapshots ``vg/lv`` as ``snap`` (size like "1G" or "20%ORIGIN")."""
    if thin:
        # Thin snapshots are created with activation skip set; we need it active to mount it.
        return ["lvcreate", "--snapshot", "--setactivationskip", "n", "--name", snap, f"{vg}/{lv}"]
    # "20%ORIGIN" style sizes are extents, which lvcreate takes only through --extents.
    amount = ["--extents", size] if "%" in size else ["--size", size]
    return ["lvcreate", "--snapshot", *amount, "--name", snap, f"{vg}/{lv}"]


def mount_options(fs_type: str) -> str:
    """Read-only mount options for a snapshot of a file system of ``fs_type``."""
    return "ro,nouuid" if fs_type == "xfs" else "ro"


class LvmProvider:
    """Snapshots of LVM logical volumes, mounted read-only for reading."""

    def __init__(
        self,
        runner: Runner = run_command,
        *,
        snapshot_size: str = DEFAULT_SNAPSHOT_SIZE,
        mount_base: Path = DEFAULT_MOUNT_BASE,
    ) -> None:
        self._run = runner
        self._size = snapshot_size
        self._mount_base = mount_base

    @property
    def name(self) -> str:
        """Provider name."""
        return "lvm"

    def supports(self, path: Path) -> Volume | Unsupported:
        """The LV mounted at ``path``'s mount point, if it is an origin LV."""
        mount = describe_mount(self._run, path, self.name)
        if isinstance(mount, Unsupported):
            return mount
        source = mount.get("SOURCE", "").split("[", 1)[0]
        if not source.startswith("/dev/"):
            return Unsupported(
                self.name, f"{mount.get('TARGET')} is {mount.get('FSTYPE')} on {source}, not an LVM device"
            )
        listed = self._run(list(LVS_ARGV))
        if not listed.ok:
            return Unsupported(self.name, f"lvs failed: {first_error_line(listed)}")
        lv = find_lv(source, parse_lvs(listed.stdout))
        if lv is None:
            return Unsupported(self.name, f"{source} is not an LVM logical volume")
        if lv.is_snapshot:
            return Unsupported(self.name, f"{lv.vg}/{lv.lv} is itself a snapshot")
        return Volume(
            provider=self.name,
            key=f"{lv.vg}/{lv.lv}",
            root=Path(mount.get("TARGET", "/")),
            fs_type=mount.get("FSTYPE", ""),
            source=source,
            details=(
                ("vg", lv.vg),
                ("lv", lv.lv),
                ("thin", "1" if lv.is_thin else ""),
                ("fs_root", mount.get("FSROOT", "/")),
            ),
        )

    def create(self, volume: Volume, prefix: str, session: str) -> Handle:
        """lvcreate, then mount read-only; on a mount failure the LV is removed again."""
        vg, lv = volume.detail("vg"), volume.detail("lv")
        snap = snapshot_lv_name(prefix, session, lv)
        argv = lvcreate_argv(vg, lv, snap, size=self._size, thin=bool(volume.detail("thin")))
        created = self._run(argv)
        if not created.ok:
            raise SnapshotError(f"lvcreate of a snapshot of {vg}/{lv} failed: {first_error_line(created)}")
        mount_dir = self._mount_base / snap
        handle = Handle(
            self.name,
            f"{vg}/{snap}",
            session,
            path=mount_dir,
            volume=volume,
            details=(("vg", vg), ("lv", snap)),
        )
        try:
            mount_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            opts = mount_options(volume.fs_type)
            check(
                self._run(["mount", "-o", opts, f"/dev/{vg}/{snap}", str(mount_dir)]), "mounting the snapshot"
            )
        except (SnapshotError, OSError) as exc:
            message = exc.strerror if isinstance(exc, OSError) else str(exc)
            try:
                self._remove(handle, mounted=False)
            except SnapshotError as cleanup:
                message = f"{message}; cleanup also failed: {cleanup}"
            raise SnapshotError(f"snapshot {vg}/{snap} of {vg}/{lv} unusable: {message}") from None
        return Handle(
            handle.provider, handle.name, session, mount_dir, volume, (*handle.details, ("mounted", "1"))
        )

    def translate(self, handle: Handle, path: Path) -> Path:
        """Live path → same path under the read-only snapshot mount."""
        if handle.volume is None or handle.path is None:
            raise SnapshotError(f"LVM snapshot {handle.name} has no volume to translate against")
        fs_root = handle.volume.detail("fs_root", "/").strip("/")
        return translate_under(handle.volume.root, handle.path / fs_root, path)

    def open_file(self, handle: Handle, path: Path) -> AbstractContextManager[Path]:
        """Read straight from the read-only snapshot mount."""
        return same_path(self.translate(handle, path))

    def delete(self, handle: Handle) -> None:
        """Unmount (if mounted), remove the mount dir, ``lvremove -f``."""
        mounted = bool(handle.detail("mounted")) or (handle.path is not None and os.path.ismount(handle.path))
        self._remove(handle, mounted=mounted)

    def _remove(self, handle: Handle, *, mounted: bool) -> None:
        if mounted and handle.path is not None:
            result = self._run(["umount", str(handle.path)])
            if not result.ok and os.path.ismount(handle.path):
                raise SnapshotError(f"cannot unmount {handle.path}: {first_error_line(result)}")
        if handle.path is not None:
            try:
                handle.path.rmdir()
            except FileNotFoundError:
                pass
            except OSError as exc:
                raise SnapshotError(f"cannot remove {handle.path}: {exc.strerror}") from None
        check(self._run(["lvremove", "-f", handle.name]), f"removing snapshot {handle.name}")

    def list_stale(self, prefix: str) -> list[Handle]:
        """Every LV named ``<prefix>-<session>-…`` (a missing lvs means there are none)."""
        listed = self._run(list(LVS_ARGV))
        if not listed.ok:
            return []
        handles: list[Handle] = []
        marker = f"{prefix}-"
        for lv in parse_lvs(listed.stdout):
            parsed = split_session(lv.lv[len(marker) :]) if lv.lv.startswith(marker) else None
            if parsed is not None:
                handles.append(
                    Handle(
                        self.name,
                        f"{lv.vg}/{lv.lv}",
                        parsed[0],
                        path=self._mount_base / lv.lv,
                        details=(("vg", lv.vg), ("lv", lv.lv)),
                    )
                )
        return handles


_: SnapshotProvider = LvmProvider()
