"""SFTP backend over the system ssh against a private sshd: conformance, host-key refusal, the
CLI, and restic reading what we wrote and the other way round."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from pathlib import Path

import pytest
from remote_helpers import child_env, make_source, require_binary, run_restic, run_sv, same_tree

from shadowvault.repo.backends import Backend, FileType
from shadowvault.repo.backends.base import RemoteError
from shadowvault.repo.backends.open import open_backend
from shadowvault.repo.backends.options import BackendOptions
from shadowvault.repo.backends.testsuite import CHECKS
from shadowvault.repo.location import parse_location


def sftp_location(env: dict[str, str]) -> str:
    """A new repository directory on the test server."""
    return (
        f"sftp:{env['SHADOWVAULT_TEST_SSH_HOST']}:{env['SHADOWVAULT_TEST_SSH_ROOT']}/r{secrets.token_hex(5)}"
    )


def _backend(env: dict[str, str], location: str, **kw: object) -> Backend:
    opts = BackendOptions(ssh_config=env["SHADOWVAULT_TEST_SSH_CONFIG"], **kw)  # type: ignore[arg-type]
    return open_backend(parse_location(location), opts)


def restic_env(env: dict[str, str], location: str) -> dict[str, str]:
    return child_env(env, location, SHADOWVAULT_SSH_CONFIG=env["SHADOWVAULT_TEST_SSH_CONFIG"])


def restic_sftp(env: dict[str, str]) -> list[str]:
    """restic 0.14's option for the same ssh config."""
    ssh = f"ssh -F {env['SHADOWVAULT_TEST_SSH_CONFIG']} {env['SHADOWVAULT_TEST_SSH_HOST']}"
    return ["-o", f"sftp.command={ssh} -s sftp"]


@pytest.mark.parametrize("check", CHECKS, ids=[c.__name__ for c in CHECKS])
def test_sftp_conformance(sshd_env: dict[str, str], check: Callable[[Backend], None]) -> None:
    be = _backend(sshd_env, sftp_location(sshd_env), connections=2)
    be.create()
    try:
        check(be)
    finally:
        be.close()


def test_sftp_layout_and_no_temp_files(sshd_env: dict[str, str]) -> None:
    loc = sftp_location(sshd_env)
    be = _backend(sshd_env, loc)
    be.create()
    root = Path(parse_location(loc).path)  # type: ignore[union-attr]
    assert sorted(p.name for p in root.iterdir()) == ["data", "index", "keys", "locks", "snapshots"]
    assert len(list((root / "data").iterdir())) == 256
    name = "cd" + secrets.token_hex(31)
    be.save(FileType.PACK, name, b"x" * 100_000)
    assert (root / "data" / "cd" / name).read_bytes() == b"x" * 100_000
    assert [p.name for p in (root / "data" / "cd").iterdir()] == [name]
    # A stray temporary file from a cut-off upload is not listed.
    (root / "data" / "cd" / f".tmp-{name}-abc").write_bytes(b"partial")
    assert dict(be.list(FileType.PACK)) == {name: 100_000}
    be.close()


def test_sftp_unknown_host_key_is_a_clear_error(sshd_env: dict[str, str], tmp_path: Path) -> None:
    cfg = Path(sshd_env["SHADOWVAULT_TEST_SSH_CONFIG"]).read_text()
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    other = tmp_path / "ssh_config"
    other.write_text(
        "\n".join(
            f"  UserKnownHostsFile {empty}" if "UserKnownHostsFile" in line else line
            for line in cfg.splitlines()
        )
        + "\n"
    )
    env = dict(sshd_env, SHADOWVAULT_TEST_SSH_CONFIG=str(other))
    be = _backend(env, sftp_location(sshd_env), retry_attempts=1)
    with pytest.raises(RemoteError) as e:
        be.create()
    assert "host key" in str(e.value) and "known_hosts" in str(e.value)
    assert e.value.permanent
    # Not silently accepted either: the empty known_hosts stays empty.
    assert empty.read_text() == ""
    # And the CLI says so in one line.
    p = run_sv(
        restic_env(env, sftp_location(sshd_env)) | {"SHADOWVAULT_SSH_CONFIG": str(other)}, "init", check=False
    )
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    assert p.returncode == 1 and len(lines) == 1 and "host key" in lines[0], p.stderr


def test_sftp_cli_and_restic_both_ways(sshd_env: dict[str, str], tmp_path: Path) -> None:
    require_binary("restic")
    loc = sftp_location(sshd_env)
    env = restic_env(sshd_env, loc)
    src = make_source(tmp_path)
    run_sv(env, "init")
    run_sv(env, "backup", str(src))
    run_restic(env, *restic_sftp(sshd_env), "check", "--read-data")
    run_restic(env, *restic_sftp(sshd_env), "restore", "latest", "--target", str(tmp_path / "by-restic"))
    same_tree(src, tmp_path / "by-restic" / str(src).lstrip("/"))
    (src / "added-by-restic").write_bytes(b"restic was here\n")
    run_restic(env, *restic_sftp(sshd_env), "backup", str(src), "--host", "restic-host")
    theirs = json.loads(
        run_restic(env, *restic_sftp(sshd_env), "snapshots", "--json", "--host", "restic-host").stdout
    )[0]["id"]
    run_sv(env, "restore", theirs, "--target", str(tmp_path / "by-sv"))
    same_tree(src, tmp_path / "by-sv" / str(src).lstrip("/"))
    run_sv(env, "check", "--read-data")


def test_restic_initialised_sftp_repository_is_read(sshd_env: dict[str, str], tmp_path: Path) -> None:
    require_binary("restic")
    loc = sftp_location(sshd_env)
    env = restic_env(sshd_env, loc)
    src = make_source(tmp_path)
    run_restic(env, *restic_sftp(sshd_env), "init")
    run_restic(env, *restic_sftp(sshd_env), "backup", str(src))
    run_sv(env, "restore", "latest", "--target", str(tmp_path / "out"))
    same_tree(src, tmp_path / "out" / str(src).lstrip("/"))
    run_sv(env, "backup", str(src))
    run_restic(env, *restic_sftp(sshd_env), "check", "--read-data")


def test_sftp_first_ssh_starts_with_the_backend_and_is_the_first_connection(sshd_env: dict[str, str]) -> None:
    # open_backend starts ssh before importing paramiko, so the login overlaps the import.
    be = _backend(sshd_env, sftp_location(sshd_env), connections=2)
    inner = be.inner  # type: ignore[attr-defined]
    started = inner._started
    assert started is not None and started.proc.poll() is None
    be.create()
    assert dict(be.list(FileType.KEY)) == {}
    assert inner._started is None and [c.ssh for c in inner._all] == [started]
    be.close()
    assert started.proc.poll() is not None
    # A backend closed before any use ends its waiting ssh too.
    unused = _backend(sshd_env, sftp_location(sshd_env))
    proc = unused.inner._started.proc  # type: ignore[attr-defined]
    unused.close()
    assert proc.poll() is not None


def test_sftp_cli_remembers_the_key_parameters_and_restores_alike(
    sshd_env: dict[str, str], tmp_path: Path
) -> None:
    # After init, the scrypt salt and parameters (never the key itself) are kept in the cache
    # directory for the next command's early derivation; restic and we restore the same files.
    require_binary("restic")
    loc = sftp_location(sshd_env)
    env = restic_env(sshd_env, loc) | {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    src = make_source(tmp_path)
    run_sv(env, "init")
    hints = list((tmp_path / "cache" / "shadowvault" / "kdf").glob("*/keys/hint.json"))
    assert len(hints) == 1
    key_file = next((Path(parse_location(loc).path) / "keys").iterdir())  # type: ignore[union-attr]
    kept, real = json.loads(hints[0].read_text()), json.loads(key_file.read_text())
    assert kept == {k: real[k] for k in ("kdf", "N", "r", "p", "salt")}
    run_sv(env, "backup", str(src))
    run_sv(env, "restore", "latest", "--target", str(tmp_path / "by-sv"))
    run_restic(env, *restic_sftp(sshd_env), "restore", "latest", "--target", str(tmp_path / "by-restic"))
    same_tree(src, tmp_path / "by-sv" / str(src).lstrip("/"))
    same_tree(src, tmp_path / "by-restic" / str(src).lstrip("/"))
