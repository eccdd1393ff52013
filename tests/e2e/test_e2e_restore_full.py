"""Issue 11 (6): a restore into a file system that fills up says so in one line.

A real 4 MiB tmpfs and a 12 MiB snapshot: without --keep-going the restore stops at the first
ENOSPC with one line naming the target and the space needed (exit 1); with --keep-going it
restores what fits and summarises the rest in one line (exit 3).
"""

from __future__ import annotations

import os
from pathlib import Path

from loopfs import tmpfs
from treeutil import sv

FILES = 12


def _backup(tmp_path: Path) -> tuple[Path, Path]:
    repo, src = tmp_path / "repo", tmp_path / "src"
    src.mkdir()
    for i in range(FILES):
        (src / f"f{i:02d}.bin").write_bytes(os.urandom(1024 * 1024))
    sv("init", repo=repo)
    sv("backup", str(src), repo=repo)
    return repo, src


def test_restore_into_a_full_file_system_stops_with_one_line(tmp_path: Path) -> None:
    repo, _ = _backup(tmp_path)
    with tmpfs(tmp_path, size="4m") as mnt:
        target = mnt / "restore"
        p = sv("restore", "latest", "--target", str(target), repo=repo, check=False)
        lines = p.stderr.splitlines()
        assert p.returncode == 1, p.stdout + p.stderr
        assert len(lines) == 1, p.stderr
        assert lines[0].startswith(f"error: no space left in {target}: the restore needs 12.0 MiB"), lines
        assert "free" in lines[0] and "Traceback" not in p.stderr


def test_restore_keep_going_restores_what_fits_and_counts_the_rest_in_one_line(tmp_path: Path) -> None:
    repo, src = _backup(tmp_path)
    with tmpfs(tmp_path, size="4m") as mnt:
        target = mnt / "restore"
        p = sv("restore", "latest", "--keep-going", "--target", str(target), repo=repo, check=False)
        assert p.returncode == 3, p.stdout + p.stderr
        lines = p.stderr.splitlines()
        assert len(lines) == 1, p.stderr
        assert "entries could not be restored: no space left in" in lines[0], lines
        assert "the restore needs 12.0 MiB" in lines[0]
        # What fits is there and complete, byte for byte.
        restored = target / str(src).lstrip("/")
        whole = [f for f in restored.iterdir() if f.stat().st_size == 1024 * 1024]
        assert whole, "nothing fitted"
        for f in whole:
            assert f.read_bytes() == (src / f.name).read_bytes()
