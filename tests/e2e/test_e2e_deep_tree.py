"""Issue 10: trees far deeper than Python's recursion limit, and huge directories, back up and restore.

The backup walk and the restore walk keep one frame per open directory on an explicit stack; a
recursive walk raised RecursionError at about 1,000 levels and the backup ended with no snapshot.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import require_binary
from treeutil import describe, restic, sv

LEVELS = 1_500


def _deep_tree(root: Path, levels: int) -> Path:
    """``levels`` nested one-digit directories with a small file ``f`` in each; returns ``root``."""
    root.mkdir()
    # Built through directory file descriptors: no path is re-resolved from the top at each level.
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for i in range(levels):
            name = str(i % 10)
            f = os.open("f", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644, dir_fd=fd)
            os.write(f, f"level {i}\n".encode())
            os.close(f)
            os.mkdir(name, dir_fd=fd)
            nxt = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = nxt
        os.symlink("../f", "up", dir_fd=fd)
    finally:
        os.close(fd)
    return root


@pytest.fixture
def work(tmp_path: Path) -> Iterator[Path]:
    """``tmp_path``, emptied by ``rm -rf`` afterwards: pytest's own clean-up of old temporary
    directories uses shutil.rmtree, which recurses per level and fails on these trees."""
    yield tmp_path
    subprocess.run(["rm", "-rf", "--", str(tmp_path)], check=False)


def _summary(stdout: str) -> dict[str, object]:
    lines = [json.loads(x) for x in stdout.splitlines() if x.startswith("{")]
    return next(x for x in reversed(lines) if x.get("message_type") == "summary")


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_a_tree_1500_levels_deep_backs_up_and_restores_with_both_tools(work: Path) -> None:
    require_binary("restic")
    src = _deep_tree(work / "s", LEVELS)
    # The deepest paths come close to PATH_MAX (4,096 bytes): the case the issue names.
    assert len(os.fsencode(str(src) + "/a" * LEVELS + "/up")) > 3000
    repo = work / "repo"
    sv("init", repo=repo)
    p = sv("backup", "--json", str(src), repo=repo, timeout=600)
    assert _summary(p.stdout)["exit_code"] == 0
    want = describe(src)
    assert len(want) == 2 * LEVELS + 1
    mine = work / "mine"
    sv("restore", "latest", "--target", str(mine), repo=repo, timeout=600)
    assert describe(mine / str(src).lstrip("/")) == want
    theirs = work / "theirs"
    restic("restore", "latest", "--target", str(theirs), repo=repo, timeout=600)
    assert describe(theirs / str(src).lstrip("/")) == want
    restic("check", repo=repo)


@pytest.mark.slow
@pytest.mark.timeout(2400)
def test_a_directory_with_200000_entries_backs_up_and_restores(tmp_path: Path) -> None:
    require_binary("restic")
    src = tmp_path / "big"
    src.mkdir()
    fd = os.open(src, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for i in range(200_000):
            f = os.open(f"e{i:06d}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644, dir_fd=fd)
            if i % 1000 == 0:
                os.write(f, f"{i}\n".encode())
            os.close(f)
    finally:
        os.close(fd)
    repo = tmp_path / "repo"
    sv("init", repo=repo)
    p = sv("backup", "--json", str(src), repo=repo, timeout=1200)
    s = _summary(p.stdout)
    assert s["exit_code"] == 0 and s["files_ok"] == 200_000
    want = describe(src)
    mine = tmp_path / "mine"
    sv("restore", "latest", "--target", str(mine), repo=repo, timeout=1200)
    assert describe(mine / str(src).lstrip("/")) == want
    # ``mine`` stays: removing 200,000 files right before restic creates as many would make ext4 scan
    # past the freed inodes on file creation (bench/README.md).
    theirs = tmp_path / "theirs"
    restic("restore", "latest", "--target", str(theirs), repo=repo, timeout=1200)
    assert describe(theirs / str(src).lstrip("/")) == want
    restic("check", repo=repo, timeout=1200)
