"""REST backend (restic's protocol v2) against `rclone serve restic`: conformance, the CLI, and
restic reading what we wrote and the other way round."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from remote_helpers import (
    child_env,
    make_source,
    require_binary,
    rest_location,
    run_restic,
    run_sv,
    same_tree,
)

from shadowvault.repo.backends import Backend, FileType
from shadowvault.repo.backends.open import open_backend
from shadowvault.repo.backends.options import BackendOptions
from shadowvault.repo.backends.testsuite import CHECKS
from shadowvault.repo.location import parse_location


@pytest.mark.parametrize("check", CHECKS, ids=[c.__name__ for c in CHECKS])
def test_rest_conformance(rest_env: dict[str, str], check: Callable[[Backend], None]) -> None:
    be = open_backend(parse_location(rest_location(rest_env, with_credentials=True)))
    be.create()
    try:
        check(be)
    finally:
        be.close()


def test_rest_credentials_from_environment(rest_env: dict[str, str]) -> None:
    loc = parse_location(rest_location(rest_env, with_credentials=False))
    anonymous = open_backend(loc, BackendOptions(retry_attempts=1))
    with pytest.raises(PermissionError) as e:
        anonymous.create()
    assert rest_env["SHADOWVAULT_TEST_REST_PASS"] not in str(e.value)
    opts = BackendOptions.from_env(
        {
            "SHADOWVAULT_REST_USERNAME": rest_env["SHADOWVAULT_TEST_REST_USER"],
            "SHADOWVAULT_REST_PASSWORD": rest_env["SHADOWVAULT_TEST_REST_PASS"],
        }
    )
    be = open_backend(loc, opts)
    be.create()
    assert list(be.list(FileType.KEY)) == []


def test_rest_cli_and_restic_both_ways(rest_env: dict[str, str], tmp_path: Path) -> None:
    require_binary("restic")
    loc = rest_location(rest_env, with_credentials=True)
    env = child_env(rest_env, loc)
    src = make_source(tmp_path)
    p = run_sv(env, "init", "--json")
    assert rest_env["SHADOWVAULT_TEST_REST_PASS"] not in p.stdout + p.stderr
    assert json.loads(p.stdout)["repository"].startswith("rest:http://sv:***@")
    p = run_sv(env, "backup", str(src), "--json")
    assert rest_env["SHADOWVAULT_TEST_REST_PASS"] not in p.stdout + p.stderr
    # restic judges our repository on the same server, and restores our snapshot.
    run_restic(env, "check", "--read-data")
    run_restic(env, "restore", "latest", "--target", str(tmp_path / "by-restic"))
    same_tree(src, tmp_path / "by-restic" / str(src).lstrip("/"))
    # restic writes a snapshot there; we list and restore it.
    (src / "added-by-restic").write_bytes(b"restic was here\n")
    run_restic(env, "backup", str(src), "--host", "restic-host")
    snaps = json.loads(run_sv(env, "snapshots", "--json").stdout)
    assert len(snaps) == 2
    theirs = json.loads(run_restic(env, "snapshots", "--json", "--host", "restic-host").stdout)[0]["id"]
    restored = tmp_path / "by-sv"
    run_sv(env, "restore", theirs, "--target", str(restored))
    same_tree(src, restored / str(src).lstrip("/"))
    run_sv(env, "check", "--read-data")


def _cmdlines() -> list[bytes]:
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    found.append(f.read())
            except OSError:
                continue
    return found


def test_rest_secret_never_in_ps_json_or_activity_log(rest_env: dict[str, str], tmp_path: Path) -> None:
    secret = rest_env["SHADOWVAULT_TEST_REST_PASS"]
    state = tmp_path / "state"
    env = child_env(
        rest_env,
        rest_location(rest_env, with_credentials=False),
        SHADOWVAULT_REST_USERNAME=rest_env["SHADOWVAULT_TEST_REST_USER"],
        SHADOWVAULT_REST_PASSWORD=secret,
        XDG_STATE_HOME=str(state),
    )
    run_sv(env, "init")
    src = make_source(tmp_path)
    p = subprocess.Popen(
        [sys.executable, "-m", "shadowvault", "backup", "--json", str(src)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    seen = 0
    while p.poll() is None:
        lines = _cmdlines()
        seen += 1
        assert not any(secret.encode() in c for c in lines), "the password is in a command line"
        time.sleep(0.02)
    out, err = p.communicate()
    assert p.returncode == 0, err
    assert seen > 0
    assert secret.encode() not in out + err
    logs = [f for f in state.rglob("*") if f.is_file()]
    assert logs, "the activity log was not written"
    for f in logs:
        assert secret.encode() not in f.read_bytes(), f
