"""Real file systems for tests: loop-mounted images (btrfs, XFS) and tmpfs, always cleaned up."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from conftest import require_binary, require_root


def sh(*argv: str) -> str:
    """Run a command that must succeed; return its stdout."""
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, f"{argv}: exit {proc.returncode}: {proc.stderr}"
    return proc.stdout


def umount(mount_point: Path) -> None:
    """Unmount, retrying briefly while a just-killed process still holds the fs; lazily at last."""
    for _ in range(30):
        if not os.path.ismount(mount_point):
            return
        if subprocess.run(["umount", str(mount_point)], capture_output=True, check=False).returncode == 0:
            return
        time.sleep(0.1)
    subprocess.run(["umount", "-l", str(mount_point)], capture_output=True, check=False)


@contextmanager
def loop_fs(
    workdir: Path, fs_type: str, *, size: str = "300M", mkfs_args: Sequence[str] = ()
) -> Iterator[Path]:
    """A fresh file system in a sparse image, loop-mounted at ``workdir/mnt-<type>``."""
    require_root()
    require_binary(f"mkfs.{fs_type}")
    require_binary("losetup")
    image = workdir / f"{fs_type}.img"
    mount_point = workdir / f"mnt-{fs_type}"
    mount_point.mkdir()
    sh("truncate", "-s", size, str(image))
    sh(f"mkfs.{fs_type}", "-q", *mkfs_args, str(image))
    device = sh("losetup", "--find", "--show", str(image)).strip()
    try:
        sh("mount", device, str(mount_point))
        try:
            yield mount_point
        finally:
            umount(mount_point)
    finally:
        subprocess.run(["losetup", "-d", device], capture_output=True, check=False)


@contextmanager
def tmpfs(workdir: Path, *, size: str = "64m") -> Iterator[Path]:
    """A small tmpfs of our own (no provider can snapshot it)."""
    require_root()
    mount_point = workdir / "mnt-tmpfs"
    mount_point.mkdir()
    sh("mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount_point))
    try:
        yield mount_point
    finally:
        umount(mount_point)
