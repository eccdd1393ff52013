"""Issue 3: backup and restore of every file type, judged against the source and by real restic."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from conftest import require_binary
from shadowvault.repo import BlobType, LocalBackend, Repository
from treeutil import PASSWORD, describe, make_full_tree, restic, sv


def summary(stdout: str) -> dict[str, object]:
    """The JSON summary line of `backup --json`."""
    lines = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    found = [line for line in lines if line.get("message_type") == "summary"]
    assert found, stdout
    return found[-1]


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("src") / "data"
    make_full_tree(src, devices=os.geteuid() == 0)
    return src


@pytest.fixture(scope="module")
def backed_up(tree: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_binary("restic")
    repo = tmp_path_factory.mktemp("repo") / "repo"
    sv("init", repo=repo)
    p = sv("backup", "--json", str(tree), repo=repo)
    s = summary(p.stdout)
    assert s["exit_code"] == 0 and s["files_failed"] == 0 and s["files_suspect"] == 0
    return repo


def test_restic_checks_and_restores_what_we_wrote(tree: Path, backed_up: Path, tmp_path: Path) -> None:
    restic("check", "--read-data", repo=backed_up)
    listed = json.loads(restic("snapshots", "--json", repo=backed_up).stdout)
    assert [s["paths"] for s in listed] == [[str(tree)]]
    restic("restore", "latest", "--target", str(tmp_path), repo=backed_up)
    assert describe(tmp_path / str(tree).lstrip("/")) == describe(tree)


def test_shadowvault_restores_data_metadata_and_holes(tree: Path, backed_up: Path, tmp_path: Path) -> None:
    sv("restore", "latest", "--target", str(tmp_path), repo=backed_up)
    restored = tmp_path / str(tree).lstrip("/")
    assert describe(restored) == describe(tree)
    sparse = os.stat(restored / "sparse.img")
    assert sparse.st_size == 64 * 1024 * 1024 + 3
    assert sparse.st_blocks * 512 < 1024 * 1024, "the 64 MiB hole was written out as zeros"
    assert os.stat(restored / "plain.txt").st_ino == os.stat(restored / "dir" / "hardlink-to-plain").st_ino


def test_shadowvault_restores_a_snapshot_restic_made(tree: Path, tmp_path: Path) -> None:
    require_binary("restic")
    repo = tmp_path / "restic-repo"
    restic("init", repo=repo)
    restic("backup", str(tree), repo=repo)
    ours = json.loads(sv("snapshots", "--json", repo=repo).stdout)
    theirs = json.loads(restic("snapshots", "--json", repo=repo).stdout)
    assert [s["id"] for s in ours] == [s["id"] for s in theirs]
    sv("check", "--read-data", repo=repo)
    target = tmp_path / "out"
    sv("restore", "latest", "--target", str(target), repo=repo)
    assert describe(target / str(tree).lstrip("/")) == describe(tree)


def test_restore_include_exclude_and_no_overwrite(backed_up: Path, tree: Path, tmp_path: Path) -> None:
    sv(
        "restore",
        "latest",
        "--target",
        str(tmp_path),
        "--include",
        "**/dir/**",
        "--exclude",
        "*.bin",
        repo=backed_up,
    )
    base = tmp_path / str(tree).lstrip("/")
    assert (base / "dir" / "compressible.log").exists()
    assert not (base / "dir" / "sub" / "deep.bin").exists()
    assert not (base / "plain.txt").exists()
    victim = base / "dir" / "compressible.log"
    os.chmod(victim, 0o644)
    victim.write_text("the user's newer data")
    p = sv(
        "restore", "latest", "--target", str(tmp_path), "--include", "**/dir/**", repo=backed_up, check=False
    )
    assert p.returncode == 3
    assert "not overwritten" in p.stderr and "Traceback" not in p.stderr
    assert victim.read_text() == "the user's newer data"
    sv(
        "restore",
        "latest",
        "--target",
        str(tmp_path),
        "--include",
        "**/dir/**",
        "--overwrite",
        "if-changed",
        repo=backed_up,
    )
    assert victim.read_bytes() == (tree / "dir" / "compressible.log").read_bytes()


def test_unchanged_second_backup_reads_nothing_and_adds_no_data(tree: Path, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    src = tmp_path / "src"
    make_full_tree(src, devices=os.geteuid() == 0)
    sv("init", repo=repo)
    first = summary(sv("backup", "--json", str(src), repo=repo).stdout)
    assert first["files_read"] > 0
    packs_before = set((repo / "data").rglob("*"))
    second = summary(sv("backup", "--json", str(src), repo=repo).stdout)
    assert second["files_read"] == 0 and second["bytes_read"] == 0
    assert second["files_unchanged"] == first["files_read"]
    assert second["data_blobs_added"] == 0
    r = Repository.open(LocalBackend(repo), PASSWORD)
    r.load_index()
    new_packs = {p.name for p in set((repo / "data").rglob("*")) - packs_before if p.is_file()}
    for pack in new_packs:
        types = {b.type for b in r.index.pack_blobs(bytes.fromhex(pack))}
        assert types == {BlobType.TREE}, "a data pack was written"
    (src / "plain.txt").write_text("changed\n")
    third = summary(sv("backup", "--json", str(src), repo=repo).stdout)
    assert third["files_read"] == 2  # plain.txt and its hard link
    forced = summary(sv("backup", "--json", "--force", str(src), repo=repo).stdout)
    assert forced["files_read"] == first["files_read"]
    restic("check", "--read-data", repo=repo)


def test_summary_counts_the_data_packs_written(tmp_path: Path) -> None:
    # The field used to read an attribute the repository did not have, and was always 0.
    src = tmp_path / "src"
    src.mkdir()
    for i in range(3):
        (src / f"r{i}").write_bytes(os.urandom(3 << 20))
    repo = tmp_path / "repo"
    sv("init", repo=repo)
    first = summary(sv("backup", "--json", "--pack-size", "4", str(src), repo=repo).stdout)
    packs = [p for p in (repo / "data").rglob("*") if p.is_file()]
    # Every data pack on disk is this session's, plus the one tree pack.
    assert first["data_packs_written"] == len(packs) - 1 >= 2
    again = summary(sv("backup", "--json", str(src), repo=repo).stdout)
    assert again["data_packs_written"] == 0
