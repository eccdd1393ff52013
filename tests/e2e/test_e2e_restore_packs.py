"""Restore by pack: files spread over many packs, shared blobs, holes, existing files, corruption."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import treeutil

PASSWORD = "pw-extra"


def sv(*args: str, repo: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    xdg = str(repo.parent / "xdg")
    env = treeutil.env(
        None,
        SHADOWVAULT_PASSWORD=PASSWORD,
        XDG_CONFIG_HOME=xdg,
        XDG_STATE_HOME=xdg,
        XDG_DATA_HOME=xdg,
        XDG_CACHE_HOME=xdg,
    )
    cmd = [sys.executable, "-m", "shadowvault", args[0], "--repo", str(repo), *args[1:]]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    if check:
        assert p.returncode == 0, p.stderr
    return p


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("src") / "data"
    (src / "a" / "b").mkdir(parents=True)
    rnd = os.urandom(6 * 1024 * 1024)
    (src / "big.bin").write_bytes(rnd)  # several chunks, over several 1 MiB packs
    (src / "a" / "copy1.bin").write_bytes(rnd)  # every blob shared with big.bin
    (src / "a" / "b" / "copy2.bin").write_bytes(rnd[: 3 * 1024 * 1024])
    repeated = os.urandom(1024 * 1024)
    with open(src / "twice.bin", "wb") as f:  # the same content twice in one file
        f.write(repeated * 4)
    with open(src / "holes.bin", "wb") as f:  # data, 2 MiB hole, data, trailing hole
        f.write(b"x" * 100_000)
        f.seek(2 * 1024 * 1024, os.SEEK_CUR)
        f.write(b"y" * 100_000)
        f.truncate(5 * 1024 * 1024)
    for i in range(300):
        (src / "a" / f"small{i}.txt").write_text(f"small file {i}\n" * (i + 1))
    (src / "empty").write_bytes(b"")
    os.chmod(src / "a" / "small7.txt", 0o640)
    os.utime(src / "twice.bin", ns=(1_000_000_000, 1_234_567_890_123_456_789))
    return src


@pytest.fixture(scope="module")
def repo(source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    r = tmp_path_factory.mktemp("repo") / "repo"
    sv("init", repo=r)
    sv("backup", "--pack-size", "1", str(source), repo=r)
    return r


def restored(target: Path, source: Path) -> Path:
    return target / str(source).lstrip("/")


def test_every_file_equal_with_metadata_and_holes(source: Path, repo: Path, tmp_path: Path) -> None:
    sv("restore", "latest", "--target", str(tmp_path), repo=repo)
    out = restored(tmp_path, source)
    for path in source.rglob("*"):
        got = out / path.relative_to(source)
        if path.is_file():
            assert digest(got) == digest(path), path
            st, gt = path.stat(), got.stat()
            assert (gt.st_mode, gt.st_size, gt.st_mtime_ns) == (st.st_mode, st.st_size, st.st_mtime_ns), path
    holes = os.stat(out / "holes.bin")
    assert holes.st_size == 5 * 1024 * 1024
    assert holes.st_blocks * 512 < 1024 * 1024, "holes were written out"


def test_existing_files_are_kept_and_counted(source: Path, repo: Path, tmp_path: Path) -> None:
    out = restored(tmp_path, source)
    (out / "a").mkdir(parents=True)
    (out / "big.bin").write_bytes(b"mine")
    (out / "a" / "small3.txt").write_bytes(b"mine too")
    p = sv("restore", "--json", "latest", "--target", str(tmp_path), repo=repo, check=False)
    assert p.returncode == 3, p.stderr
    summary = [json.loads(x) for x in p.stdout.splitlines() if '"summary"' in x][-1]
    assert summary["skipped_existing"] == 2
    total = sum(1 for x in source.rglob("*") if x.is_file())
    assert summary["files_restored"] == total - 2
    all_bytes = sum(x.stat().st_size for x in source.rglob("*") if x.is_file())
    kept = 6 * 1024 * 1024 + len((source / "a" / "small3.txt").read_bytes())
    assert summary["bytes"] == all_bytes - kept
    assert (out / "big.bin").read_bytes() == b"mine"
    assert (out / "a" / "small3.txt").read_bytes() == b"mine too"
    assert p.stdout.count("exists, not overwritten (use --overwrite to replace it)") == 2
    assert digest(out / "a" / "copy1.bin") == digest(source / "big.bin")
    p = sv("restore", "--overwrite", "always", "latest", "--target", str(tmp_path), repo=repo)
    assert digest(out / "big.bin") == digest(source / "big.bin")


def test_a_corrupt_pack_fails_the_restore(source: Path, repo: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    subprocess.run(["cp", "-a", str(repo), str(broken)], check=True)
    packs = sorted((broken / "data").rglob("*"), key=lambda p: p.stat().st_size if p.is_file() else 0)
    victim = packs[-1]
    os.chmod(victim, 0o600)
    data = bytearray(victim.read_bytes())
    data[100] ^= 0xFF
    victim.write_bytes(bytes(data))
    p = sv("restore", "latest", "--target", str(tmp_path / "out"), repo=broken, check=False)
    assert p.returncode != 0 and p.returncode != 3
    assert "Traceback" not in p.stderr and ("MAC" in p.stderr or "SHA-256" in p.stderr), p.stderr
