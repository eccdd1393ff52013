"""Retention policy (compared with real restic forget) and prune (checked by real restic)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from tests.conftest import require_binary
from tests.repo.repo_helpers import FAST_KDF, PASSWORD, restic, unpack_fixture, walk, write_sample

from shadowvault.errors import RepoError
from shadowvault.repo import (
    BlobType,
    FileType,
    LocalBackend,
    MemBackend,
    Repository,
    check_repository,
    forget,
    prune,
)
from shadowvault.repo.ids import hash_bytes
from shadowvault.repo.maintenance import PruneOptions

HOUR = 3600 * 10**9
DAY = 24 * HOUR
T0 = 1_767_225_600 * 10**9  # 2026-01-01T00:00:00Z


def test_prune_removes_forgotten_data_and_restic_agrees(tmp_path: Path) -> None:
    require_binary("restic")
    path = tmp_path / "repo"
    repo = Repository.init(LocalBackend(path), PASSWORD, kdf=FAST_KDF, pack_size=8 * 1024)
    shared = os.urandom(6000)
    only_old = os.urandom(20000)
    old = write_sample(repo, {"shared": shared, "gone": only_old}, time_ns=T0, tags=["old"])
    new = write_sample(repo, {"shared": shared, "new": b"fresh" * 500}, time_ns=T0 + DAY, tags=["new"])
    packs_before = {n for n, _ in repo.list_files(FileType.PACK)}
    forget(repo, [old])
    stats = prune(repo)
    assert stats.deleted_packs or stats.repacked_packs
    assert stats.freed_bytes > 20000
    packs_after = {n for n, _ in repo.list_files(FileType.PACK)}
    assert not set(stats.deleted_packs) & packs_after and set(stats.new_packs) <= packs_after
    assert packs_after != packs_before
    assert "no errors were found" in restic(path, "check", "--read-data").stdout
    fresh = Repository.open(LocalBackend(path), PASSWORD)
    assert [sid for sid, _ in fresh.list_snapshots()] == [new]
    assert check_repository(fresh, read_data=True, include_hints=True) == []
    nodes = dict(walk(fresh, fresh.find_snapshot(new)[1].tree))
    got = b"".join(fresh.load_blob(BlobType.DATA, c) for c in nodes["/data/shared"].content or [])
    assert got == shared
    gone_chunk = only_old[:4096]
    assert not fresh.has_blob(BlobType.DATA, hash_bytes(gone_chunk))
    # A second prune has nothing left to do.
    again = prune(fresh)
    assert again.deleted_packs == [] and again.repacked_packs == []


def test_prune_on_a_restic_made_repository(tmp_path: Path) -> None:
    require_binary("restic")
    path, expected = unpack_fixture(tmp_path)
    password = expected["password"]
    first = expected["snapshots"][0]["id"]
    repo = Repository.open(LocalBackend(path), password)
    with repo.lock(exclusive=True, recheck_delay=0):
        forget(repo, [first])
        prune(repo)
    assert "no errors were found" in restic(path, "check", "--read-data", password=password).stdout
    listed = json.loads(restic(path, "snapshots", "--json", password=password).stdout)
    assert [s["id"] for s in listed] == [expected["snapshots"][1]["id"]]


def test_prune_refuses_when_data_is_missing() -> None:
    repo = Repository.init(MemBackend(), PASSWORD, kdf=FAST_KDF)
    write_sample(repo, {"f": b"content"}, time_ns=T0, tags=[])
    for name, _ in list(repo.list_files(FileType.INDEX)):
        repo.remove_file(FileType.INDEX, name)
    repo.reset_index()
    with pytest.raises(RepoError, match="prune stopped"):
        prune(repo)
    assert len(list(repo.list_files(FileType.PACK))) == 2  # nothing was deleted


def test_dry_run_changes_nothing(tmp_path: Path) -> None:
    repo = Repository.init(MemBackend(), PASSWORD, kdf=FAST_KDF)
    sid = write_sample(repo, {"f": os.urandom(5000)}, time_ns=T0, tags=[])
    forget(repo, [sid])
    before = {ft: sorted(repo.backend.list(ft)) for ft in FileType}
    stats = prune(repo, PruneOptions(dry_run=True))
    assert len(stats.deleted_packs) == 2
    assert {ft: sorted(repo.backend.list(ft)) for ft in FileType} == before
