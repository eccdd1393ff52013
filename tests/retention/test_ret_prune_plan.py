"""Prune's plan: which packs are kept, deleted or repacked under --max-unused, --max-repack-size and
--repack-small, and that executing it keeps every referenced blob (in-memory repository)."""

from __future__ import annotations

import os

from tests.repo.repo_helpers import FAST_KDF, PASSWORD, walk, write_sample

from shadowvault.repo import BlobType, FileType, MemBackend, Repository, check_repository, forget
from shadowvault.repo.maintenance import PruneOptions, plan_prune, prune, unused_data

T0 = 1_767_225_600 * 10**9


def make_repo() -> tuple[Repository, str, str, dict[str, bytes]]:
    """Pack size 16 KiB; an old snapshot with data only it uses, interleaved in the same packs."""
    repo = Repository.init(MemBackend(), PASSWORD, kdf=FAST_KDF, pack_size=16 * 1024)
    keep = {f"{i:02d}k": os.urandom(3000) for i in range(12)}
    gone = {f"{i:02d}g": os.urandom(3000) for i in range(12)}  # sorted in between
    old = write_sample(repo, {**keep, **gone}, time_ns=T0, tags=[])
    new = write_sample(repo, keep, time_ns=T0 + 10**12, tags=[])
    forget(repo, [old])
    return repo, old, new, keep


def test_max_unused_decides_what_is_repacked() -> None:
    repo, _old, _new, _keep = make_repo()
    lax = plan_prune(repo, PruneOptions(max_unused_percent=100)).stats
    assert lax.repacked_packs == [] and 0 < lax.unused_after <= lax.unused_bytes
    strict = plan_prune(repo, PruneOptions(max_unused_percent=0)).stats
    assert strict.repacked_packs and strict.unused_after == 0
    capped = plan_prune(repo, PruneOptions(max_unused_percent=0, max_repack_bytes=1)).stats
    assert capped.repacked_packs == []
    assert unused_data(repo)[1] == strict.unused_bytes


def test_executed_plan_keeps_every_referenced_blob() -> None:
    repo, _old, new, keep = make_repo()
    stats = prune(repo, PruneOptions(max_unused_percent=0))
    assert stats.new_packs and stats.written_index_files >= 1 and stats.freed_bytes > 12 * 3000
    assert check_repository(repo, read_data=True, include_hints=True) == []
    assert unused_data(repo) == (0, 0)
    nodes = dict(walk(repo, repo.find_snapshot(new)[1].tree))
    for name, content in keep.items():
        got = b"".join(repo.load_blob(BlobType.DATA, c) for c in nodes[f"/data/{name}"].content or [])
        assert got == content
    # Nothing to do now: the index files are left alone.
    index_before = sorted(repo.backend.list(FileType.INDEX))
    again = prune(repo, PruneOptions(max_unused_percent=0))
    assert again.written_index_files == 0 and sorted(repo.backend.list(FileType.INDEX)) == index_before


def test_repack_small_merges_small_packs() -> None:
    repo = Repository.init(MemBackend(), PASSWORD, kdf=FAST_KDF, pack_size=64 * 1024)
    for i in range(4):  # each backup flushes its own small packs
        write_sample(repo, {f"f{i}": os.urandom(2000)}, time_ns=T0 + i, tags=[])
    packs_before = len(list(repo.backend.list(FileType.PACK)))
    assert plan_prune(repo, PruneOptions()).stats.repacked_packs == []
    stats = prune(repo, PruneOptions(repack_small=True))
    assert len(stats.repacked_packs) == packs_before
    assert len(list(repo.backend.list(FileType.PACK))) == 2  # one data pack, one tree pack
    assert check_repository(repo, read_data=True, include_hints=True) == []
