"""forget --set / --explain / bad input, snapshots --group-by / --latest, and check's information
about unreferenced data, at the command line on real backups."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import require_binary
from shadowvault.engine.retention import explain_policy
from shadowvault.repo.policy import KeepPolicy
from treeutil import env, restic, sv


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Three backups of set `web` (host a), two ad-hoc ones of host b."""
    base = tmp_path_factory.mktemp("cli")
    repo, src = base / "repo", base / "src"
    src.mkdir()
    cfg = base / "sv.toml"
    cfg.write_text(
        f'[repository]\npath = "{repo}"\n\n[sets.web]\nsources = ["{src}"]\nretention = {{ keep_last = 2 }}\n'
    )
    sv("init", repo=repo)
    for i in range(3):
        (src / "f.txt").write_text(f"version {i}\n" * 1000)
        sv("backup", "--config", str(cfg), "--set", "web", "--host", "a", repo=repo)
    for i in range(2):
        (src / "f.txt").write_text(f"other {i}\n" * 1000)
        sv("backup", "--host", "b", str(src), repo=repo)
    return repo, cfg


def listed(repo: Path, *args: str) -> list[dict]:
    return json.loads(sv("snapshots", "--json", *args, repo=repo).stdout)


def test_snapshots_group_by_and_latest(repo: tuple[Path, Path]) -> None:
    path, _ = repo
    groups = listed(path, "--group-by", "host")
    assert [(g["group_key"]["hostname"], len(g["snapshots"])) for g in groups] == [("a", 3), ("b", 2)]
    assert groups[0]["group_key"]["paths"] is None
    latest = listed(path, "--latest", "1")
    assert sorted(s["hostname"] for s in latest) == ["a", "b"]
    assert latest == [s for s in listed(path) if s["id"] in {x["id"] for x in latest}]
    text = sv("snapshots", "--group-by", "host,tags", repo=path).stdout
    assert 'snapshots for host "a", tags [web]:' in text


def test_forget_set_applies_its_retention_only_to_its_snapshots(
    repo: tuple[Path, Path], tmp_path: Path
) -> None:
    require_binary("restic")
    path, cfg = repo
    copy = tmp_path / "repo"
    shutil.copytree(path, copy)
    dry = sv("forget", "--config", str(cfg), "--set", "web", "--dry-run", "--json", repo=copy).stdout
    (group,) = json.loads(dry.splitlines()[0])
    assert group["host"] == "a" and len(group["keep"]) == 2 and len(group["remove"]) == 1
    assert len(listed(copy)) == 5  # a dry run removes nothing
    sv("forget", "--config", str(cfg), "--set", "web", repo=copy)
    left = listed(copy)
    assert sorted(s["hostname"] for s in left) == ["a", "a", "b", "b"]
    # check: the forgotten snapshot's data is information, not an error.
    out = sv("check", repo=copy)
    assert "referenced by no snapshot" in out.stdout and "no errors were found" in out.stdout
    summary = json.loads(sv("check", "--json", repo=copy).stdout.splitlines()[-1])
    assert summary["problems"] == 0 and summary["unused_blobs"] > 0
    sv("prune", repo=copy)
    summary = json.loads(sv("check", "--json", repo=copy).stdout.splitlines()[-1])
    assert summary["unused_blobs"] == 0 and summary["unindexed_packs"] == 0
    restic("check", "--read-data", repo=copy)


def test_forget_refuses_to_empty_a_group_and_bad_input(repo: tuple[Path, Path]) -> None:
    path, _ = repo
    p = sv("forget", "--keep-tag", "nonexistent", repo=path, check=False)
    assert p.returncode == 2 and "refusing to delete every snapshot" in p.stderr
    assert len(listed(path)) == 5
    for args, words in [
        ((), "no policy"),
        (("--keep-within", "5w"), "--keep-within"),
        (("--keep-last", "1", "--group-by", "colour"), "--group-by"),
        (("--keep-daily", "-3"), "--keep-daily"),
    ]:
        p = sv("forget", *args, repo=path, check=False)
        lines = [line for line in p.stderr.splitlines() if line.strip()]
        assert p.returncode == 2 and len(lines) == 1 and words in lines[0], p.stderr
    p = sv("prune", "--max-unused", "150%", repo=path, check=False)
    assert p.returncode == 2 and "--max-unused" in p.stderr


def test_explain_previews_a_year() -> None:
    doc = json.loads(sv("forget", "--explain", "--keep-daily", "7", "--keep-weekly", "4", "--json").stdout)
    assert doc["snapshots"] == 365
    matches = [k["matches"] for k in doc["keep"]]
    assert sum("daily snapshot" in m for m in matches) == 7
    assert sum("weekly snapshot" in m for m in matches) == 4
    assert matches[-1] == ["weekly snapshot"]  # both budgets used up: the oldest is not kept
    # Budget left (5 years asked, this year of snapshots spans 2 calendar years): the oldest is kept too.
    start = int(dt.datetime(2026, 6, 1, 12, tzinfo=dt.UTC).timestamp()) * 10**9
    g = explain_policy(KeepPolicy(yearly=5), every_s=86400, start_ns=start)
    assert [r.matches for r in g.reasons] == [
        ("yearly snapshot",),
        ("yearly snapshot",),
        ("oldest yearly snapshot",),
    ]
    text = sv("forget", "--explain", "--explain-every", "week", "--keep-monthly", "3").stdout
    assert "monthly snapshot" in text and "52 snapshots" in text


def test_check_reports_what_an_interrupted_backup_left_and_prune_removes_it(tmp_path: Path) -> None:
    require_binary("restic")
    repo, src = tmp_path / "repo", tmp_path / "src"
    src.mkdir()
    for i in range(12):
        (src / f"f{i:02d}.bin").write_bytes(os.urandom(1024 * 1024))
    held = src / "zz-held.log"  # held open for writing: the session waits for its retry, then is killed
    held.write_text("held\n")
    sv("init", repo=repo)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; f = open(sys.argv[1], 'ab'); time.sleep(300)", str(held)]
    )
    backup = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "shadowvault",
            "backup",
            "--pack-size",
            "1",
            "--open-files",
            "deny-write",
            "--retry-times",
            "3",
            "--retry-interval",
            "60",
            str(src),
        ],
        env=env(repo),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while (
            not [n for n in os.listdir(repo / "index") if not n.startswith(".")]
            and time.monotonic() < deadline
        ):
            assert backup.poll() is None, "the backup ended before it could be interrupted"
            time.sleep(0.02)
        backup.kill()
        backup.wait(timeout=60)
    finally:
        holder.kill()
        holder.wait()
    assert not os.listdir(repo / "snapshots")
    out = sv("check", repo=repo)
    assert "referenced by no snapshot" in out.stdout and "no errors were found" in out.stdout
    before = json.loads(sv("check", "--json", repo=repo).stdout.splitlines()[-1])
    assert before["problems"] == 0 and before["unused_bytes"] >= 1024 * 1024  # at least one pack
    sv("prune", repo=repo)
    after = json.loads(sv("check", "--json", repo=repo).stdout.splitlines()[-1])
    assert after["unused_blobs"] == 0 and after["unindexed_packs"] == 0
    # No pack is left (a hidden `.tmp-*` file of the killed upload may be: issue 11 removes those).
    packs = [
        f for d in os.listdir(repo / "data") for f in os.listdir(repo / "data" / d) if not f.startswith(".")
    ]
    assert packs == []
    restic("check", "--read-data", repo=repo)
