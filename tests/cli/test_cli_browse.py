"""Issue 16: diff, find, stats, dump, tag and unlock, each judged by restic on the same repository."""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from conftest import require_binary
from shadowvault.repo import FileType, LocalBackend, Repository
from treeutil import PASSWORD, env, restic, sv


@pytest.fixture(scope="module")
def two(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[str]]:
    require_binary("restic")
    root = tmp_path_factory.mktemp("browse")
    repo, src = root / "repo", root / "src"
    (src / "etc" / "gone").mkdir(parents=True)
    (src / "etc" / "a.conf").write_text("a = 1\n")
    (src / "etc" / "gone" / "x.conf").write_text("x\n")
    (src / "big.bin").write_bytes(os.urandom(3 * 1024 * 1024))
    (src / "keep.txt").write_text("kept\n")
    os.link(src / "keep.txt", src / "hardlink.txt")
    os.symlink("keep.txt", src / "sym")
    sv("init", repo=repo)
    sv("backup", str(src), repo=repo)
    (src / "etc" / "a.conf").write_text("a = 2, longer\n")
    (src / "etc" / "gone" / "x.conf").unlink()
    (src / "etc" / "gone").rmdir()
    (src / "new").mkdir()
    (src / "new" / "n.conf").write_text("new\n")
    sv("backup", str(src), repo=repo)
    ids = [s["id"] for s in json.loads(sv("snapshots", "--json", repo=repo).stdout)]
    return repo, src, ids


def _changes(text: str) -> set[tuple[str, str]]:
    out = set()
    for line in text.splitlines():
        if line[:1] in "+-MTU" and len(line) > 5 and line[5] == "/":
            out.add((line[:5].strip(), line[5:]))
    return out


def test_diff_lists_what_restic_lists(two: tuple[Path, Path, list[str]]) -> None:
    repo, src, (a, b) = two
    ours = _changes(sv("diff", a[:8], b, repo=repo).stdout)
    theirs = _changes(restic("diff", a, b, repo=repo).stdout)
    assert ours == theirs
    assert ("M", f"{src}/etc/a.conf") in ours and ("-", f"{src}/etc/gone/") in ours
    assert ("+", f"{src}/new/n.conf") in ours


def test_find_matches_restic(two: tuple[Path, Path, list[str]]) -> None:
    repo, _, _ = two
    ours = json.loads(sv("find", "--json", "*.conf", repo=repo).stdout)
    theirs = json.loads(restic("find", "--json", "*.conf", repo=repo).stdout)
    assert {(r["snapshot"], m["path"]) for r in ours for m in r["matches"]} == {
        (r["snapshot"], m["path"]) for r in theirs for m in r["matches"]
    }
    assert [r["hits"] for r in ours] == [r["hits"] for r in theirs] == [2, 2]


@pytest.mark.parametrize("mode", ["restore-size", "raw-data"])
def test_stats_equal_restics(two: tuple[Path, Path, list[str]], mode: str) -> None:
    repo, _, _ = two
    for snaps in ([], ["latest"]):
        ours = json.loads(sv("stats", "--json", "--mode", mode, *snaps, repo=repo).stdout)
        theirs = json.loads(restic("stats", "--json", "--mode", mode, *snaps, repo=repo).stdout)
        for key in ("total_size", "total_file_count", "snapshots_count", "total_blob_count"):
            assert ours.get(key, 0) == theirs.get(key, 0), (key, ours, theirs)


def _run_bytes(cmd: list[str], repo: Path) -> bytes:
    return subprocess.run(cmd, env=env(repo), capture_output=True, check=True, timeout=300).stdout


def test_dump_file_and_directory_like_restic(two: tuple[Path, Path, list[str]]) -> None:
    import sys

    repo, src, _ = two
    ours = _run_bytes([sys.executable, "-m", "shadowvault", "dump", "latest", f"{src}/big.bin"], repo)
    theirs = _run_bytes(["restic", "--no-cache", "dump", "latest", f"{src}/big.bin"], repo)
    assert ours == theirs == (src / "big.bin").read_bytes()
    our_tar = _run_bytes([sys.executable, "-m", "shadowvault", "dump", "latest", str(src)], repo)
    their_tar = _run_bytes(["restic", "--no-cache", "dump", "latest", str(src)], repo)

    def members(raw: bytes) -> dict[str, bytes | str]:
        with tarfile.open(fileobj=io.BytesIO(raw)) as t:
            result: dict[str, bytes | str] = {}
            for m in t.getmembers():
                f = t.extractfile(m) if m.isfile() else None
                result[m.name.rstrip("/")] = f.read() if f else m.linkname or m.type.decode()
            return result

    assert members(our_tar) == members(their_tar)


def test_tag_rewrites_snapshots_restic_reads(two: tuple[Path, Path, list[str]]) -> None:
    repo, _, (a, _) = two
    sv("tag", a[:8], "--add", "old,keep", repo=repo)
    sv("tag", "--tag", "old", "--remove", "keep", repo=repo)
    snaps = json.loads(restic("snapshots", "--json", repo=repo).stdout)
    tagged = [s for s in snaps if s.get("tags")]
    assert len(tagged) == 1 and tagged[0]["tags"] == ["old"] and tagged[0]["original"] == a
    restic("check", repo=repo)
    sv("tag", "--tag", "old", "--set", "", repo=repo)
    assert not any(s.get("tags") for s in json.loads(restic("snapshots", "--json", repo=repo).stdout))


def test_unlock_keeps_live_locks_unless_told(two: tuple[Path, Path, list[str]]) -> None:
    repo, _, _ = two
    r = Repository.open(LocalBackend(repo), PASSWORD)
    try:
        with r.lock(exclusive=False, recheck_delay=0):
            assert "removed 0 stale locks" in sv("unlock", repo=repo).stdout
            assert len(list(r.list_files(FileType.LOCK))) == 1
            assert "removed 1 locks" in sv("unlock", "--remove-all", repo=repo).stdout
            assert restic("list", "locks", repo=repo).stdout.strip() == ""
    finally:
        r.close()
