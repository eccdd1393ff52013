"""Early key derivation: started from the command line, taken by the repository layer when it matches."""

from __future__ import annotations

from pathlib import Path

import platformdirs
import pytest
from tests.repo.repo_helpers import FAST_KDF, PASSWORD

from shadowvault import kdfcache
from shadowvault.repo import LocalBackend, Repository


def _repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    Repository.init(LocalBackend(path), PASSWORD, kdf=FAST_KDF).close()
    return path


def _started(argv: list[str], env: dict[str, str]) -> int:
    try:
        return kdfcache.prefetch_for_command(argv, env)
    finally:
        kdfcache._jobs.clear()


def test_the_command_line_names_the_repository_and_the_password(tmp_path: Path) -> None:
    repo = str(_repo(tmp_path))
    env = {"SHADOWVAULT_PASSWORD": PASSWORD}
    assert _started(["backup", "--repo", repo, "/src"], env) == 1
    assert _started(["--json", "restore", f"--repo={repo}", "latest"], env) == 1
    assert _started(["snapshots", "-r", repo], env) == 1
    assert _started(["ls", "latest"], {**env, "SHADOWVAULT_REPOSITORY": repo}) == 1
    # Nothing to do: a command without a repository, no password, no repository named, none there.
    assert _started(["sets", "--repo", repo], env) == 0
    assert _started(["backup", "--repo", repo, "/src"], {}) == 0
    assert _started(["backup", "/src"], env) == 0
    assert _started(["backup", "-r", str(tmp_path / "missing")], env) == 0


def test_the_repository_takes_the_early_key_and_ignores_a_wrong_guess(tmp_path: Path) -> None:
    path = _repo(tmp_path)
    assert kdfcache.prefetch(str(path), PASSWORD) == 1
    Repository.open(LocalBackend(path), PASSWORD).close()
    assert kdfcache._jobs == {}  # taken, not computed a second time
    assert kdfcache.prefetch(str(path), "not the password") == 1
    Repository.open(LocalBackend(path), PASSWORD).close()  # derived normally
    assert len(kdfcache._jobs) == 1  # the wrong guess was never used
    kdfcache._jobs.clear()


def test_a_damaged_key_file_is_left_to_the_repository_layer(tmp_path: Path) -> None:
    path = _repo(tmp_path)
    (path / "keys" / "0000broken").write_text("{not json")
    assert kdfcache.prefetch(str(path), PASSWORD) == 1  # the good key only
    kdfcache._jobs.clear()


def test_a_remote_repository_is_derived_early_from_the_remembered_hint(tmp_path: Path) -> None:
    # A remote repository cannot be listed before the imports: the hint kept after it opened is used.
    path = _repo(tmp_path)
    opened = Repository.open(LocalBackend(path), PASSWORD)
    assert opened.key_file_json is not None
    opened.close()
    env = {"SHADOWVAULT_PASSWORD": PASSWORD, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    where = "rest:http://user:secret@127.0.0.1:8000/repo/"
    assert _started(["snapshots", "-r", where], env) == 0  # nothing remembered yet
    kdfcache.remember(where, opened.key_file_json, env)
    hint = Path(kdfcache.hint_dir(where, env)) / "keys" / "hint.json"
    assert hint.stat().st_mode & 0o777 == 0o600
    kept = hint.read_bytes()
    assert b"secret" not in kept and b'"data"' not in kept  # salt and parameters, never the key
    assert "secret" not in str(hint)
    # The same server with another password in the URL is the same repository.
    assert kdfcache.hint_dir("rest:http://user:other@127.0.0.1:8000/repo/", env) == str(hint.parents[1])
    assert _started(["snapshots", "-r", "sftp:host:/elsewhere"], env) == 0
    assert kdfcache.prefetch_for_command(["restore", "-r", where, "latest"], env) == 1
    Repository.open(LocalBackend(path), PASSWORD).close()
    assert kdfcache._jobs == {}  # the hint's derivation was the one the key file needed
    hint.write_text("{damaged")
    assert _started(["snapshots", "-r", where], env) == 0


def test_the_cache_directory_is_the_one_platformdirs_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert kdfcache.cache_dir() == platformdirs.user_cache_dir("shadowvault")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert kdfcache.cache_dir() == platformdirs.user_cache_dir("shadowvault")
