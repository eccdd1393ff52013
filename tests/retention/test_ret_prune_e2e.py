"""forget + prune at the command line on real backups, judged by restic and by restores.

Several generations share data; the forgotten ones each hold data nobody else references. After
prune: `restic check --read-data` passes, kept snapshots restore byte-identical, the repository
shrank by at least the forgotten-only data, and a no-change backup still reads no file. Prune is
killed with SIGKILL at points spread over its run (repack, index write, deletes) and the
repository must stay sound; a backup holding the lock makes prune refuse with one clear line.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import require_binary
from treeutil import env, restic, sv

GENERATIONS = 5
KEEP = 2


def tree_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def write_generation(src: Path, gen: int) -> dict[str, bytes]:
    """Shared files (unchanged across generations) plus files only this generation has."""
    rng = random.Random(gen)
    if src.exists():
        shutil.rmtree(src)
    (src / "shared").mkdir(parents=True)
    files: dict[str, bytes] = {}
    shared_rng = random.Random(1000)
    for i in range(4):
        files[f"shared/s{i}.bin"] = shared_rng.randbytes(400_000)
    for i in range(3):
        files[f"gen/g{gen}-{i}.bin"] = rng.randbytes(300_000)
    files["log.txt"] = b"".join(b"line %d of generation %d\n" % (i, gen) for i in range(5000))
    for rel, data in files.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(data)
    return files


def digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in root.rglob("*")
        if p.is_file()
    }


@pytest.fixture(scope="module")
def history(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, Path, list[tuple[str, dict[str, bytes]]]]:
    """A repository of GENERATIONS backups (1 MiB packs) with forget already applied (keep 2)."""
    require_binary("restic")
    base = tmp_path_factory.mktemp("gens")
    repo, src = base / "repo", base / "src"
    sv("init", repo=repo)
    gens = []
    for g in range(GENERATIONS):
        files = write_generation(src, g)
        sv("backup", "--json", "--pack-size", "1", "--host", "h", str(src), repo=repo)
        snaps = json.loads(sv("snapshots", "--json", repo=repo).stdout)
        gens.append((snaps[-1]["id"], files))
    return repo, src, gens


def only_forgotten_bytes(gens: list[tuple[str, dict[str, bytes]]]) -> int:
    """Plaintext of the random (incompressible) files only forgotten generations hold: their stored
    size is at least this. (The text log compresses, so its stored size is not known here.)"""
    kept = {data for _, files in gens[-KEEP:] for data in files.values()}
    gone = {d for _, files in gens[:-KEEP] for name, d in files.items() if name.endswith(".bin")} - kept
    return sum(len(d) for d in gone)


def assert_sound(
    repo: Path, kept: list[tuple[str, dict[str, bytes]]], out: Path, *, restorer: str = "shadowvault"
) -> None:
    sv("check", "--read-data", repo=repo)  # ignores the lock a killed process left behind
    # restic honours every lock until `restic unlock` removes stale ones (dead process, this
    # host): what a restic user runs after a crash.
    restic("unlock", repo=repo)
    restic("check", "--read-data", repo=repo)
    for sid, files in kept:
        target = out / sid[:8]
        shutil.rmtree(target, ignore_errors=True)
        if restorer == "restic":
            restic("restore", sid, "--target", str(target), repo=repo)
        else:
            sv("restore", sid, "--target", str(target), repo=repo)
        (root,) = [p for p in target.rglob("src") if p.is_dir()]
        assert digest(root) == {k: hashlib.sha256(v).hexdigest() for k, v in files.items()}


def published_locks(locks: Path) -> list[str]:
    """Lock files under their final names (64 hex digits): a writer's temporary file is visible in
    the directory before its rename, and a lock that is not yet renamed is not held yet."""
    return [n for n in os.listdir(locks) if re.fullmatch(r"[0-9a-f]{64}", n)]


def test_forget_prune_frees_space_and_keeps_data(history: tuple[Path, Path, list], tmp_path: Path) -> None:
    source_repo, src, gens = history
    repo = tmp_path / "repo"
    shutil.copytree(source_repo, repo)
    before = tree_size(repo)
    out = sv("forget", "--keep-last", str(KEEP), "--prune", "--max-unused", "0", "--json", repo=repo).stdout
    groups = next(doc for doc in map(json.loads, out.splitlines()) if isinstance(doc, list))
    (group,) = groups
    assert [s["id"] for s in group["keep"]] == [sid for sid, _ in reversed(gens[-KEEP:])]
    assert sorted(s["id"] for s in group["remove"]) == sorted(sid for sid, _ in gens[:-KEEP])
    assert group["reasons"][0]["matches"] == ["last snapshot"]
    summary = [
        d
        for d in map(json.loads, out.splitlines())
        if isinstance(d, dict) and d.get("message_type") == "summary"
    ]
    assert summary and summary[-1]["packs_repacked"] + summary[-1]["packs_deleted"] > 0
    after = tree_size(repo)
    assert before - after >= only_forgotten_bytes(gens), (before, after)
    theirs = json.loads(restic("snapshots", "--json", repo=repo).stdout)
    assert sorted(s["id"] for s in theirs) == sorted(sid for sid, _ in gens[-KEEP:])
    assert_sound(repo, gens[-KEEP:], tmp_path / "restored")
    # The source is still the last generation: a backup now must read nothing.
    again = sv("backup", "--json", "--host", "h", str(src), repo=repo).stdout
    (final,) = [d for d in map(json.loads, again.splitlines()) if d.get("message_type") == "summary"]
    assert final["files_read"] == 0, final
    # Nothing left to do for a second prune.
    second = json.loads(sv("prune", "--json", repo=repo).stdout.splitlines()[-1])
    assert second["packs_deleted"] == second["packs_repacked"] == second["packs_unindexed_deleted"] == 0


STEP_PHASES = {"repack", "index", "delete"}


def prune_until(repo: Path, kill_after: int | None) -> int:
    """Run prune; SIGKILL it once ``kill_after`` steps of the writing phases were reported."""
    p = subprocess.Popen(
        [sys.executable, "-m", "shadowvault", "prune", "--json", "--max-unused", "0", "--pack-size", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env(repo),
    )
    assert p.stdout is not None
    steps = 0
    for line in p.stdout:
        doc = json.loads(line)
        if doc.get("phase") in STEP_PHASES:
            steps += 1
            if kill_after is not None and steps >= kill_after:
                os.kill(p.pid, signal.SIGKILL)
                break
    p.wait(timeout=120)
    if kill_after is None:
        assert p.returncode == 0, p.stderr.read() if p.stderr else ""
    p.stdout.close()
    if p.stderr is not None:
        p.stderr.close()
    return steps


@pytest.mark.timeout(1200)
def test_prune_killed_at_ten_points_leaves_a_sound_repository(
    history: tuple[Path, Path, list], tmp_path: Path
) -> None:
    source_repo, _src, gens = history
    pristine = tmp_path / "pristine"
    shutil.copytree(source_repo, pristine)
    sv("forget", "--keep-last", str(KEEP), repo=pristine)
    probe = tmp_path / "probe"
    shutil.copytree(pristine, probe)
    total = prune_until(probe, None)
    assert total >= 10, f"only {total} steps: the kill points would not be spread"
    points = sorted({max(1, round(i * total / 10)) for i in range(10)})
    for point in points:
        repo = tmp_path / f"killed-{point}"
        shutil.copytree(pristine, repo)
        prune_until(repo, point)
        # restic restores here (its start is quicker); the other tests restore with shadowvault.
        assert_sound(repo, gens[-KEEP:], tmp_path / "restored", restorer="restic")
        prune_until(repo, None)
        restic("check", "--read-data", repo=repo)
        shutil.rmtree(repo)


def test_prune_refuses_while_a_backup_holds_the_lock(
    history: tuple[Path, Path, list], tmp_path: Path
) -> None:
    source_repo, src, gens = history
    repo = tmp_path / "repo"
    shutil.copytree(source_repo, repo)
    # A real backup process, stopped while it holds its lock.
    backup = subprocess.Popen(
        [sys.executable, "-m", "shadowvault", "backup", "--host", "h", str(src)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env(repo),
    )
    try:
        locks = repo / "locks"
        for _ in range(600):
            if published_locks(locks):
                break
            if backup.poll() is not None:
                pytest.fail("the backup ended before its lock was seen")
            subprocess.run(["sleep", "0.02"], check=True)
        os.kill(backup.pid, signal.SIGSTOP)
        p = sv("prune", repo=repo, check=False)
        lines = [line for line in p.stderr.splitlines() if line.strip()]
        assert p.returncode == 1 and len(lines) == 1 and "locked" in lines[0] and "Traceback" not in p.stderr
        assert str(backup.pid) in lines[0]
    finally:
        os.kill(backup.pid, signal.SIGCONT)
        backup.wait(timeout=120)
    assert backup.returncode == 0
    # Both done: nothing was lost, and prune now runs.
    sv("prune", repo=repo)
    restic("check", "--read-data", repo=repo)
    assert len(json.loads(restic("snapshots", "--json", repo=repo).stdout)) == len(gens) + 1


def test_restic_and_prune_honour_each_others_locks(history: tuple[Path, Path, list], tmp_path: Path) -> None:
    source_repo, src, _gens = history
    repo = tmp_path / "repo"
    shutil.copytree(source_repo, repo)
    # restic holds a shared lock while `backup --stdin` waits for its input.
    holder = subprocess.Popen(
        ["restic", "--no-cache", "backup", "--stdin", "--stdin-filename", "x"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env(repo),
    )
    try:
        for _ in range(1000):
            if published_locks(repo / "locks"):
                break
            subprocess.run(["sleep", "0.02"], check=True)
        p = sv("prune", repo=repo, check=False)
        assert p.returncode == 1 and "locked" in p.stderr and str(holder.pid) in p.stderr, p.stderr
    finally:
        assert holder.stdin is not None
        holder.stdin.write(b"data\n")
        holder.stdin.close()
        holder.wait(timeout=120)
    assert holder.returncode == 0
    # Our prune's exclusive lock, held while it is stopped: restic refuses to back up.
    sv("forget", "--keep-last", "1", repo=repo)
    pruner = subprocess.Popen(
        [sys.executable, "-m", "shadowvault", "prune", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env(repo),
    )
    assert pruner.stdout is not None
    try:
        pruner.stdout.readline()  # the first status line: the lock is held
        os.kill(pruner.pid, signal.SIGSTOP)
        r = restic("backup", str(src), repo=repo, check=False)
        assert r.returncode != 0 and "locked exclusively" in r.stderr, r.stderr
    finally:
        os.kill(pruner.pid, signal.SIGCONT)
        pruner.stdout.read()
        pruner.stdout.close()
        pruner.wait(timeout=300)
    assert pruner.returncode == 0
    restic("check", "--read-data", repo=repo)
