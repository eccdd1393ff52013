"""The metadata pre-warm walks the sources while the repository opens, and stops when told."""

from __future__ import annotations

import sys
from pathlib import Path

from conftest import require_root
from loopfs import tmpfs
from shadowvault.engine.prewarm import MetadataPrewarm


def _tree(base: Path, dirs: int, files: int) -> int:
    for d in range(dirs):
        sub = base / f"d{d:03d}"
        sub.mkdir(parents=True)
        for f in range(files):
            (sub / f"f{f:03d}").write_bytes(b"x")
    return dirs * (files + 1)


def test_walks_every_entry_of_every_source(tmp_path: Path) -> None:
    n = _tree(tmp_path / "a", 5, 10) + _tree(tmp_path / "b", 3, 4)
    p = MetadataPrewarm([str(tmp_path / "a"), str(tmp_path / "b"), str(tmp_path / "missing")])
    p.join(30)
    assert p.entries == n


def test_respects_the_cap_and_stop(tmp_path: Path) -> None:
    _tree(tmp_path, 20, 50)
    capped = MetadataPrewarm([str(tmp_path)], max_entries=100)
    capped.join(30)
    assert capped.entries == 100
    stopped = MetadataPrewarm([str(tmp_path)])
    stopped.stop()
    stopped.join(30)
    assert stopped.entries < 20 * 51


def test_a_tree_deeper_than_the_recursion_limit(tmp_path: Path) -> None:
    old = sys.getrecursionlimit()
    depth = 300
    deep = tmp_path
    for _ in range(depth):
        deep = deep / "d"
    deep.mkdir(parents=True)
    sys.setrecursionlimit(150)  # low, so that pytest can still remove the tree afterwards
    try:
        p = MetadataPrewarm([str(tmp_path)])
        p.join(60)
    finally:
        sys.setrecursionlimit(old)
    assert p.entries == depth


def test_does_not_enter_another_file_system(tmp_path: Path) -> None:
    require_root()
    base = tmp_path / "src"
    base.mkdir()
    with tmpfs(base) as mnt:
        _tree(mnt, 3, 3)
        p = MetadataPrewarm([str(base)])
        p.join(30)
        assert p.entries == 1  # the mount point itself, not what is below it
