"""Issue 11 (5): temporary files of interrupted writes are listed by `check` and removed by a
client that is alone in the repository, never while another client may be writing."""

from __future__ import annotations

import os
import time
from pathlib import Path

from conftest import require_binary
from shadowvault.repo import LocalBackend, Repository, find_temp_files, remove_stale_temp_files
from treeutil import PASSWORD, restic, sv

HOUR = 3600


def _leftover(repo: Path, name: str, age: float, size: int = 1 << 20) -> Path:
    """A temporary pack as a killed upload leaves it: hidden name in data/xx/, partly written."""
    path = repo / "data" / name[:2] / f".tmp-{name}-0123456789ab"
    path.write_bytes(os.urandom(size))
    then = time.time() - age
    os.utime(path, (then, then))
    return path


def _setup(tmp_path: Path) -> tuple[Path, Path, Path, Path]:
    repo, src = tmp_path / "repo", tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("content\n")
    sv("init", repo=repo)
    old = _leftover(repo, "ab" + "0" * 62, 2 * HOUR)
    fresh = _leftover(repo, "cd" + "1" * 62, 10)
    return repo, src, old, fresh


def test_check_lists_them_and_a_lone_backup_removes_only_old_ones(tmp_path: Path) -> None:
    require_binary("restic")
    repo, src, old, fresh = _setup(tmp_path)
    p = sv("check", repo=repo)
    assert "no errors were found" in p.stdout
    info = [line for line in p.stderr.splitlines() if line.startswith("info: temporary file")]
    assert len(info) == 2 and any(str(old.relative_to(repo)) in line for line in info), p.stderr
    b = sv("backup", str(src), repo=repo)
    assert "removed 1 temporary files (1048576 bytes)" in b.stderr
    assert not old.exists() and fresh.exists()
    restic("check", "--read-data", repo=repo)


def test_nothing_is_removed_while_another_client_holds_a_lock(tmp_path: Path) -> None:
    repo, src, old, _ = _setup(tmp_path)
    other = Repository.open(LocalBackend(repo), PASSWORD)
    try:
        with other.lock(exclusive=False):
            b = sv("backup", str(src), repo=repo)
            assert "temporary files" not in b.stderr
            assert old.exists()
    finally:
        other.close()


def test_prune_style_exclusive_lock_removes_old_leftovers(tmp_path: Path) -> None:
    repo, _, old, fresh = _setup(tmp_path)
    r = Repository.open(LocalBackend(repo), PASSWORD)
    try:
        assert remove_stale_temp_files(r) == []  # no lock held: never
        with r.lock(exclusive=True):
            removed = remove_stale_temp_files(r)
        assert [t.path for t in removed] == [str(old.relative_to(repo))]
        assert [t.path for t in find_temp_files(r)] == [str(fresh.relative_to(repo))]
    finally:
        r.close()
