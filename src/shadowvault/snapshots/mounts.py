"""Which mount a path lives on, read from ``/proc/self/mountinfo``.

Providers need the file-system type (is this btrfs? xfs?), the mount point
(where a reflink work dir can go), the mounted source (the LV or dataset) and
the mount root (which btrfs subvolume is mounted there). Parsing is pure; only
``read_mounts`` touches /proc.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from shadowvault.snapshots.commands import Runner, first_error_line
from shadowvault.snapshots.model import Unsupported

__all__ = [
    "FINDMNT_COLUMNS",
    "PSEUDO_FS_TYPES",
    "MountEntry",
    "find_mount",
    "findmnt_argv",
    "mounts_of",
    "nested_mounts",
    "parse_findmnt",
    "parse_mountinfo",
    "read_mounts",
    "unescape",
]

MOUNTINFO = Path("/proc/self/mountinfo")
_ESCAPE = re.compile(r"\\([0-7]{3})")
_PAIR = re.compile(r'([A-Z_%-]+)="((?:[^"\\]|\\.)*)"')
_HEX_ESCAPE = re.compile(r"\\x([0-9a-fA-F]{2})")
#: Columns asked of findmnt by the LVM and ZFS providers.
FINDMNT_COLUMNS = "SOURCE,FSTYPE,TARGET,FSROOT"


@dataclass(frozen=True)
class MountEntry:
    """One line of mountinfo (the fields providers use)."""

    mount_id: int
    parent_id: int
    device: str  # "major:minor"
    root: str  # path inside the file system that is mounted here
    mount_point: Path
    options: tuple[str, ...]
    fs_type: str
    source: str
    super_options: tuple[str, ...]

    @property
    def read_only(self) -> bool:
        """True when this mount is read-only."""
        return "ro" in self.options


def unescape(field: str) -> str:
    """Undo mountinfo's octal escapes (``\\040`` for space, ``\\011`` tab, ``\\012``, ``\\134``)."""
    return _ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), field)


def parse_mountinfo(text: str) -> list[MountEntry]:
    """Parse mountinfo text into entries, in file order (later entries are mounted on top)."""
    entries: list[MountEntry] = []
    for line in text.splitlines():
        fields = line.split(" ")
        try:
            sep = fields.index("-", 6)
        except ValueError:
            continue
        if len(fields) < sep + 3:
            continue
        entries.append(
            MountEntry(
                mount_id=int(fields[0]),
                parent_id=int(fields[1]),
                device=fields[2],
                root=unescape(fields[3]),
                mount_point=Path(unescape(fields[4])),
                options=tuple(fields[5].split(",")),
                fs_type=fields[sep + 1],
                source=unescape(fields[sep + 2]),
                super_options=tuple(fields[sep + 3].split(",")) if len(fields) > sep + 3 else (),
            )
        )
    return entries


def read_mounts() -> list[MountEntry]:
    """The current process's mount table."""
    return parse_mountinfo(MOUNTINFO.read_text(encoding="utf-8", errors="surrogateescape"))


def find_mount(path: Path, entries: Sequence[MountEntry] | None = None) -> MountEntry | None:
    """The mount that holds ``path`` (longest matching mount point; the last one wins on ties).

    ``path`` must already be absolute and resolved; symlinks are the caller's
    business because only it knows whether to follow them.
    """
    if entries is None:
        entries = read_mounts()
    best: MountEntry | None = None
    best_len = -1
    for entry in entries:
        if _is_within(path, entry.mount_point):
            length = len(entry.mount_point.parts)
            if length >= best_len:
                best, best_len = entry, length
    return best


def mounts_of(entries: Iterable[MountEntry], fs_types: Iterable[str]) -> list[MountEntry]:
    """Entries whose file-system type is one of ``fs_types``, deduplicated by mount point."""
    wanted = set(fs_types)
    seen: dict[Path, MountEntry] = {}
    for entry in entries:
        if entry.fs_type in wanted:
            seen[entry.mount_point] = entry
    return list(seen.values())


#: Kernel and memory file systems: never data a snapshot is expected to hold.
PSEUDO_FS_TYPES = frozenset(
    {
        *("proc", "sysfs", "devtmpfs", "devpts", "cgroup", "cgroup2", "securityfs", "pstore", "bpf"),
        *("debugfs", "tracefs", "configfs", "fusectl", "mqueue", "hugetlbfs", "autofs", "binfmt_misc"),
        *("efivarfs", "rpc_pipefs", "nsfs", "tmpfs", "ramfs"),
    }
)


def nested_mounts(root: Path, entries: Sequence[MountEntry]) -> list[Path]:
    """Mount points strictly below ``root`` holding real data (a volume snapshot shows them empty)."""
    visible: dict[Path, str] = {}
    for entry in entries:
        if root in entry.mount_point.parents:
            visible[entry.mount_point] = entry.fs_type  # later entries are mounted on top
    return sorted(p for p, fs_type in visible.items() if fs_type not in PSEUDO_FS_TYPES)


def _is_within(path: Path, base: Path) -> bool:
    return path == base or base in path.parents


def findmnt_argv(path: Path) -> list[str]:
    """The ``findmnt`` call that describes the mount holding ``path`` as KEY="value" pairs."""
    return ["findmnt", "-n", "-P", "-o", FINDMNT_COLUMNS, "--target", str(path)]


def parse_findmnt(text: str) -> dict[str, str] | None:
    """The last line of ``findmnt -P`` output as a dict (the topmost mount), or None if empty.

    findmnt escapes unsafe characters as ``\\xNN`` inside the quotes.
    """
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return None
    return {
        key: _HEX_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), value)
        for key, value in _PAIR.findall(lines[-1])
    }


def describe_mount(run: Runner, path: Path, provider: str) -> dict[str, str] | Unsupported:
    """The ``findmnt`` description of the mount holding ``path``, or why ``provider`` cannot tell."""
    found = run(findmnt_argv(path))
    mount = parse_findmnt(found.stdout) if found.ok else None
    if mount is None:
        return Unsupported(provider, f"findmnt cannot tell the mount of {path}: {first_error_line(found)}")
    return mount
