"""S3 backend against `rclone serve s3`: conformance, multipart packs, the CLI, restic both ways,
and three clients backing up into one repository at once."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from remote_helpers import child_env, make_source, require_binary, run_restic, run_sv, same_tree

from shadowvault.repo.backends import Backend, FileType
from shadowvault.repo.backends.open import open_backend
from shadowvault.repo.backends.options import BackendOptions
from shadowvault.repo.backends.s3 import MULTIPART_THRESHOLD
from shadowvault.repo.backends.testsuite import CHECKS
from shadowvault.repo.location import parse_location


def s3_location(env: dict[str, str]) -> str:
    """A new bucket and prefix on the test server."""
    return f"s3:{env['SHADOWVAULT_TEST_S3_ENDPOINT']}/b{secrets.token_hex(5)}/repo"


def _backend(env: dict[str, str], location: str, **kw: object) -> Backend:
    saved = dict(os.environ)
    os.environ.update(
        {k: env[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")}
    )
    try:
        return open_backend(parse_location(location), BackendOptions(**kw))  # type: ignore[arg-type]
    finally:
        os.environ.clear()
        os.environ.update(saved)


@pytest.mark.parametrize("check", CHECKS, ids=[c.__name__ for c in CHECKS])
def test_s3_conformance(s3_env: dict[str, str], check: Callable[[Backend], None]) -> None:
    be = _backend(s3_env, s3_location(s3_env))
    be.create()
    try:
        check(be)
    finally:
        be.close()


def test_s3_multipart_pack_whole_and_ranged(s3_env: dict[str, str]) -> None:
    be = _backend(s3_env, s3_location(s3_env), connections=3)
    be.create()
    data = os.urandom(MULTIPART_THRESHOLD + 5 * 1024 * 1024 + 7)
    name = "ab" + secrets.token_hex(31)
    be.save(FileType.PACK, name, data)
    assert be.stat(FileType.PACK, name) == len(data)
    assert be.load(FileType.PACK, name) == data
    assert be.load(FileType.PACK, name, 9_000_000, 1000) == data[9_000_000:9_001_000]
    assert dict(be.list(FileType.PACK)) == {name: len(data)}
    be.close()


def test_s3_wrong_secret_is_permission_error(s3_env: dict[str, str]) -> None:
    env = dict(s3_env, AWS_SECRET_ACCESS_KEY="wrong" + s3_env["AWS_SECRET_ACCESS_KEY"][5:])
    be = _backend(env, s3_location(s3_env), retry_attempts=1)
    with pytest.raises(PermissionError) as e:
        be.create()
    assert env["AWS_SECRET_ACCESS_KEY"] not in str(e.value)


def test_s3_cli_and_restic_both_ways(s3_env: dict[str, str], tmp_path: Path) -> None:
    require_binary("restic")
    env = child_env(s3_env, s3_location(s3_env))
    src = make_source(tmp_path)
    run_sv(env, "init")
    p = run_sv(env, "backup", str(src), "--json")
    assert s3_env["AWS_SECRET_ACCESS_KEY"] not in p.stdout + p.stderr
    run_restic(env, "check", "--read-data")
    run_restic(env, "restore", "latest", "--target", str(tmp_path / "by-restic"))
    same_tree(src, tmp_path / "by-restic" / str(src).lstrip("/"))
    (src / "added-by-restic").write_bytes(b"restic was here\n")
    run_restic(env, "backup", str(src), "--host", "restic-host")
    theirs = json.loads(run_restic(env, "snapshots", "--json", "--host", "restic-host").stdout)[0]["id"]
    run_sv(env, "restore", theirs, "--target", str(tmp_path / "by-sv"))
    same_tree(src, tmp_path / "by-sv" / str(src).lstrip("/"))
    run_sv(env, "check", "--read-data")


def test_restic_initialised_s3_repository_is_read(s3_env: dict[str, str], tmp_path: Path) -> None:
    require_binary("restic")
    env = child_env(s3_env, s3_location(s3_env))
    src = make_source(tmp_path)
    run_restic(env, "init")
    run_restic(env, "backup", str(src))
    run_sv(env, "restore", "latest", "--target", str(tmp_path / "out"))
    same_tree(src, tmp_path / "out" / str(src).lstrip("/"))
    run_sv(env, "backup", str(src))
    run_restic(env, "check", "--read-data")


def test_three_concurrent_backups_into_one_s3_repository(s3_env: dict[str, str], tmp_path: Path) -> None:
    require_binary("restic")
    env = child_env(s3_env, s3_location(s3_env))
    run_sv(env, "init")
    sources = []
    for i in range(3):
        src = make_source(tmp_path / f"host{i}")
        (src / "who").write_text(f"host {i}\n")
        sources.append(src)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "shadowvault", "backup", str(src), "--host", f"host{i}"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i, src in enumerate(sources)
    ]
    for p in procs:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, out + err
    run_restic(env, "check", "--read-data")
    snaps = json.loads(run_sv(env, "snapshots", "--json").stdout)
    assert sorted(s["hostname"] for s in snaps) == ["host0", "host1", "host2"]
    for s in snaps:
        target = tmp_path / f"restore-{s['hostname']}"
        run_sv(env, "restore", s["id"], "--target", str(target))
        src = tmp_path / s["hostname"] / "src"
        same_tree(src, target / str(src).lstrip("/"))
