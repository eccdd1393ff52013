"""Issue 2 at the command line: init/snapshots/cat/check, corruption, and one-line errors for bad input."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import require_binary, require_root
from shadowvault.repo import LocalBackend, Repository, crypto
from treeutil import PASSWORD, env, restic, sv


def one_line_error(p: subprocess.CompletedProcess[str], *words: str) -> None:
    """A user error: non-zero exit, exactly one line on stderr, naming the thing, no traceback."""
    assert p.returncode != 0
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, p.stderr
    assert "Traceback" not in p.stderr
    for w in words:
        assert w in lines[0], lines[0]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    sv("init", repo=path)
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    (src / "d" / "f.txt").write_text("some data\n" * 1000)
    (src / "big.bin").write_bytes(os.urandom(2 * 1024 * 1024))
    sv("backup", str(src), "--tag", "first", repo=path)
    sv("backup", str(src), "--tag", "second", "--host", "otherhost", repo=path)
    return path


def test_restic_accepts_our_repository(repo: Path) -> None:
    require_binary("restic")
    restic("check", "--read-data", repo=repo)
    theirs = json.loads(restic("snapshots", "--json", repo=repo).stdout)
    ours = json.loads(sv("snapshots", "--json", repo=repo).stdout)
    assert sorted(s["id"] for s in theirs) == sorted(s["id"] for s in ours)
    assert {tuple(s["tags"]) for s in theirs} == {("first",), ("second",)}


def test_snapshot_filters_and_cat(repo: Path) -> None:
    other = json.loads(sv("snapshots", "--json", "--host", "otherhost", repo=repo).stdout)
    assert [s["tags"] for s in other] == [["second"]]
    tagged = json.loads(sv("snapshots", "--json", "--tag", "first", repo=repo).stdout)
    assert len(tagged) == 1
    cfg = json.loads(sv("cat", "config", repo=repo).stdout)
    assert cfg["version"] == 2 and len(cfg["id"]) == 64
    snap = json.loads(sv("cat", "snapshot", tagged[0]["id"][:8], repo=repo).stdout)
    tree = json.loads(sv("cat", "tree", snap["tree"], repo=repo).stdout)
    assert tree["nodes"][0]["type"] == "dir"
    index_name = next((repo / "index").iterdir()).name
    assert "packs" in json.loads(sv("cat", "index", index_name, repo=repo).stdout)
    assert sv("check", "--read-data", repo=repo).returncode == 0


def test_flipped_byte_in_a_pack_is_named_by_check(repo: Path) -> None:
    packs = sorted((p for p in (repo / "data").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    victim = packs[-1]  # the data pack holding the 2 MiB random file
    os.chmod(victim, 0o644)
    data = bytearray(victim.read_bytes())
    data[100] ^= 0xFF
    victim.write_bytes(bytes(data))
    assert sv("check", repo=repo).returncode == 0  # structure is intact: only --read-data reads blobs
    p = sv("check", "--read-data", repo=repo, check=False)
    assert p.returncode != 0
    assert victim.name in p.stderr
    r = Repository.open(LocalBackend(repo), PASSWORD)
    r.load_index()
    blob_ids = [b.id.hex() for b in r.index.pack_blobs(bytes.fromhex(victim.name))]
    assert any(b in p.stderr for b in blob_ids), p.stderr
    assert "Traceback" not in p.stderr


def test_wrong_password(repo: Path) -> None:
    p = sv("snapshots", repo=repo, check=False, env_extra={"SHADOWVAULT_PASSWORD": "nope"})
    one_line_error(p, "wrong password", str(repo))


def test_missing_repository_and_not_a_repository(tmp_path: Path) -> None:
    one_line_error(sv("snapshots", repo=tmp_path / "absent", check=False), "no repository", "absent")
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "file.txt").write_text("not a repo")
    one_line_error(sv("check", repo=tmp_path / "plain", check=False), "no repository", "plain")


def test_unknown_repository_version(repo: Path) -> None:
    r = Repository.open(LocalBackend(repo), PASSWORD)
    cfg = dict(r.config)
    cfg["version"] = 99
    config = repo / "config"
    os.chmod(config, 0o644)
    config.write_bytes(crypto.seal(r.key, json.dumps(cfg).encode()))
    one_line_error(sv("snapshots", repo=repo, check=False), "version", "99")


def test_corrupt_key_file(repo: Path) -> None:
    for key in (repo / "keys").iterdir():
        os.chmod(key, 0o644)
        key.write_text("{ not json")
    one_line_error(sv("snapshots", repo=repo, check=False), "key")


def test_unreadable_key_file_for_an_unprivileged_user(repo: Path) -> None:
    require_root()
    for key in (repo / "keys").iterdir():
        os.chmod(key, 0o600)
    for d in [repo, *repo.parents]:  # let "nobody" reach the repository, but not read its key
        if d == Path("/tmp"):
            break
        os.chmod(d, 0o755)
    e = env(repo)
    p = subprocess.run(
        # Import first: the interpreter's own files may not be readable by "nobody".
        [
            sys.executable,
            "-c",
            "import os; from shadowvault.cli import main; "
            "import shadowvault.config, shadowvault.cli.commands.snapshots; "
            "os.setgid(65534); os.setuid(65534); raise SystemExit(main(['snapshots']))",
        ],
        capture_output=True,
        text=True,
        env=e,
        timeout=60,
    )
    one_line_error(p, "key")


def test_missing_password_without_terminal(repo: Path) -> None:
    e = env(repo)
    del e["SHADOWVAULT_PASSWORD"]
    p = subprocess.run(
        [sys.executable, "-m", "shadowvault", "snapshots"],
        capture_output=True,
        text=True,
        env=e,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )
    one_line_error(p, "SHADOWVAULT_PASSWORD")
    assert p.returncode == 2


def test_zero_config_first_backup(tmp_path: Path) -> None:
    home = tmp_path / "home"
    docs = home / "Documents"
    docs.mkdir(parents=True)
    (docs / "letter.txt").write_text("Dear restic,\n")
    e = env(
        None,
        HOME=str(home),
        XDG_DATA_HOME=str(home / ".local/share"),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_STATE_HOME=str(home / ".local/state"),
    )
    for var in ("SHADOWVAULT_PASSWORD", "SHADOWVAULT_REPOSITORY"):
        e.pop(var, None)
    run = [sys.executable, "-m", "shadowvault", "backup", str(docs)]
    p = subprocess.run(run, capture_output=True, text=True, env=e, stdin=subprocess.DEVNULL, timeout=120)
    assert p.returncode == 0, p.stderr
    data = home / ".local/share/shadowvault"
    pw_file = data / "password"
    assert stat.S_IMODE(pw_file.stat().st_mode) == 0o600
    assert str(data / "repo") in p.stderr and str(pw_file) in p.stderr and "safe" in p.stderr
    second = subprocess.run(run, capture_output=True, text=True, env=e, stdin=subprocess.DEVNULL, timeout=120)
    assert second.returncode == 0 and "created the default repository" not in second.stderr
    listed = subprocess.run(
        [sys.executable, "-m", "shadowvault", "snapshots", "--json"],
        capture_output=True,
        text=True,
        env=e,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )
    assert len(json.loads(listed.stdout)) == 2
    if os.environ.get("CI") or os.path.exists("/usr/bin/restic"):
        r = subprocess.run(
            ["restic", "--no-cache", "-r", str(data / "repo"), "--password-file", str(pw_file), "check"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert r.returncode == 0, r.stderr
