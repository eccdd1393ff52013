"""The shared backend conformance suite against local and mem, plus local-layout specifics."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from shadowvault.repo.backends import Backend, FileType, LocalBackend, MemBackend
from shadowvault.repo.backends.testsuite import CHECKS


def _local(tmp_path: Path) -> Backend:
    be = LocalBackend(tmp_path / "repo")
    be.create()
    return be


def _mem(tmp_path: Path) -> Backend:
    be = MemBackend()
    be.create()
    return be


@pytest.mark.parametrize("make", [_local, _mem], ids=["local", "mem"])
@pytest.mark.parametrize("check", CHECKS, ids=[c.__name__ for c in CHECKS])
def test_backend_conformance(
    make: Callable[[Path], Backend], check: Callable[[Backend], None], tmp_path: Path
) -> None:
    check(make(tmp_path))


def test_local_layout_matches_restic(tmp_path: Path) -> None:
    be = LocalBackend(tmp_path / "repo")
    be.create()
    root = tmp_path / "repo"
    assert sorted(p.name for p in root.iterdir()) == ["data", "index", "keys", "locks", "snapshots"]
    assert sorted(p.name for p in (root / "data").iterdir()) == [f"{i:02x}" for i in range(256)]
    name = "ab" + "0" * 62
    be.save(FileType.PACK, name, b"pack")
    path = root / "data" / "ab" / name
    assert path.read_bytes() == b"pack"
    # Finished files are read-only, like restic's.
    assert stat.S_IMODE(path.stat().st_mode) == 0o400
    be.save(FileType.CONFIG, "config", b"cfg")
    assert (root / "config").read_bytes() == b"cfg"


def test_local_leaves_no_temp_files_and_ignores_strays(tmp_path: Path) -> None:
    be = LocalBackend(tmp_path / "repo")
    be.create()
    idx = tmp_path / "repo" / "index"
    name = "cd" * 32
    be.save(FileType.INDEX, name, b"x" * 10)
    assert [p.name for p in idx.iterdir()] == [name]
    (idx / f".tmp-{name}-deadbeef").write_bytes(b"half written")
    assert list(be.list(FileType.INDEX)) == [(name, 10)]


def test_local_save_failure_cleans_up(tmp_path: Path) -> None:
    be = LocalBackend(tmp_path / "repo")
    be.create()
    name = "ef" * 32
    be.save(FileType.SNAPSHOT, name, b"one")
    with pytest.raises(FileExistsError):
        be.save(FileType.SNAPSHOT, name, b"two")
    assert os.listdir(tmp_path / "repo" / "snapshots") == [name]


def test_local_rejects_path_tricks(tmp_path: Path) -> None:
    be = LocalBackend(tmp_path / "repo")
    for bad in ("../x", ".hidden", ""):
        with pytest.raises(ValueError):
            be.path(FileType.INDEX, bad)
