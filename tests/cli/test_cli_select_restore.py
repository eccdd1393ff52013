"""Issue 16: snapshot selection (latest of host/path/tag/set, ID:subpath) and restore onto
existing trees (unchanged files are not an error; --overwrite, --verify, --delete, --dry-run)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from treeutil import describe, sv


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("sel")
    repo = root / "repo"
    src = root / "src"
    (src / "etc" / "sub").mkdir(parents=True)
    (src / "etc" / "a.conf").write_text("a = 1\n")
    (src / "etc" / "sub" / "b.conf").write_text("b = 2\n" * 100)
    (src / "data.bin").write_bytes(os.urandom(300_000))
    os.symlink("etc/a.conf", src / "link")
    sv("init", repo=repo)
    sv("backup", str(src), "--tag", "web,prod", "--host", "alpha", repo=repo)
    (src / "later.txt").write_text("only in the second snapshot\n")
    sv("backup", str(src), "--tag", "db", "--host", "beta", repo=repo)
    return repo, src


def _ids(repo: Path, *filters: str) -> list[str]:
    return [s["id"] for s in json.loads(sv("snapshots", "--json", *filters, repo=repo).stdout)]


def _summary(stdout: str) -> dict[str, object]:
    docs = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    summary: dict[str, object] = docs[-1]
    return summary


def test_latest_honours_host_and_tag_filters(setup: tuple[Path, Path]) -> None:
    repo, _ = setup
    first, second = _ids(repo)
    assert _ids(repo, "--host", "alpha") == [first]
    assert _ids(repo, "--tag", "web,prod") == [first]
    assert _ids(repo, "--tag", "web,db") == []  # a comma means "all of these"
    assert _ids(repo, "--tag", "nothere", "--tag", "db") == [second]  # several --tag: any
    ls_alpha = sv("ls", "latest", "--host", "alpha", repo=repo).stdout
    ls_beta = sv("ls", "latest", repo=repo).stdout
    assert "later.txt" not in ls_alpha and "later.txt" in ls_beta
    p = sv("ls", "latest", "--host", "nobody", repo=repo, check=False)
    assert p.returncode == 1 and "no snapshot matches" in p.stderr


def test_snapshot_subpath_in_ls_and_restore(setup: tuple[Path, Path], tmp_path: Path) -> None:
    repo, src = setup
    etc = str(src / "etc")
    listed = sv("ls", f"latest:{etc}", repo=repo).stdout.split()
    assert listed == [etc, f"{etc}/a.conf", f"{etc}/sub", f"{etc}/sub/b.conf"]
    sid = _ids(repo)[0]
    target = tmp_path / "t"
    sv("restore", f"{sid[:8]}:{etc}", "--target", str(target), repo=repo)
    assert describe(target) == describe(src / "etc")
    p = sv("restore", f"latest:{src}/nope", "--target", str(target), repo=repo, check=False)
    assert p.returncode == 2 and "is not in snapshot" in p.stderr


def test_restore_onto_an_identical_tree_exits_0(setup: tuple[Path, Path], tmp_path: Path) -> None:
    repo, src = setup
    target = tmp_path / "t"
    sv("restore", f"latest:{src}", "--target", str(target), repo=repo)
    p = sv("restore", "--json", f"latest:{src}", "--target", str(target), repo=repo)
    s = _summary(p.stdout)
    assert s["unchanged"] == 5 and s["files_restored"] == 0 and s["skipped_existing"] == 0
    assert describe(target) == describe(src)


def test_overwrite_modes_verify_delete_and_dry_run(setup: tuple[Path, Path], tmp_path: Path) -> None:
    repo, src = setup
    target = tmp_path / "t"
    ref = f"latest:{src}"
    sv("restore", ref, "--target", str(target), repo=repo)
    conf = target / "etc" / "a.conf"
    st = conf.stat()
    conf.write_text("a = 9\n")  # same size; mtime put back: only --verify can tell
    os.utime(conf, ns=(st.st_atime_ns, st.st_mtime_ns))
    (target / "extra.txt").write_text("not in the snapshot")
    (target / "later.txt").write_text("the user's own, longer text\n")

    never = sv("restore", "--json", ref, "--target", str(target), repo=repo, check=False)
    assert never.returncode == 3
    assert _summary(never.stdout)["skipped_existing"] == 1  # later.txt differs by size
    assert (target / "later.txt").read_text() == "the user's own, longer text\n"
    assert conf.read_text() == "a = 9\n"

    dry = sv(
        "restore",
        "--json",
        ref,
        "--target",
        str(target),
        "--overwrite",
        "if-changed",
        "--verify",
        "--delete",
        "--dry-run",
        repo=repo,
    )
    s = _summary(dry.stdout)
    assert s["overwritten"] == 2 and s["deleted"] == 1 and s["dry_run"] is True
    assert (target / "extra.txt").exists() and conf.read_text() == "a = 9\n"

    sv(
        "restore",
        ref,
        "--target",
        str(target),
        "--overwrite",
        "if-changed",
        "--verify",
        "--delete",
        repo=repo,
    )
    assert not (target / "extra.txt").exists()
    assert describe(target) == describe(src)


def test_dry_run_into_a_new_directory_creates_nothing(setup: tuple[Path, Path], tmp_path: Path) -> None:
    repo, src = setup
    target = tmp_path / "new"
    p = sv("restore", "--json", f"latest:{src}", "--target", str(target), "--dry-run", repo=repo)
    s = _summary(p.stdout)
    assert s["files_restored"] == 4 and s["bytes"] == sum(
        f.stat().st_size for f in src.rglob("*") if f.is_file() and not f.is_symlink()
    )
    assert not target.exists()
