"""Issue 16: the command line a restic or borg user expects (run as real child processes)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shadowvault.cli.commands import COMMANDS
from shadowvault.cli.parser import command_index
from treeutil import sv


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("parse")
    path = root / "repo"
    sv("init", repo=path)
    src = root / "src"
    (src / "d").mkdir(parents=True)
    (src / "d" / "f.txt").write_text("hello\n")
    sv("backup", str(src), repo=path)
    return path


def test_global_option_before_and_after_the_command(repo: Path, tmp_path: Path) -> None:
    # No $SHADOWVAULT_REPOSITORY: the option alone names the repository.
    before = sv("--repo", str(repo), "--json", "snapshots")
    after = sv("snapshots", "--repo", str(repo), "--json")
    assert json.loads(before.stdout) == json.loads(after.stdout)
    assert len(json.loads(before.stdout)) == 1
    # Given before the command, the command's own parser does not reset it to its default.
    assert sv("-r", str(repo), "-q", "ls", "latest").returncode == 0


def test_option_after_positionals(repo: Path) -> None:
    p = sv("ls", "latest", "--long", "/", repo=repo)
    assert "f.txt" in p.stdout and "-rw" in p.stdout


def test_command_typo_suggests_the_command() -> None:
    p = sv("backpu", "/tmp", check=False)
    assert p.returncode == 2
    assert "did you mean 'backup'" in p.stderr
    assert "Traceback" not in p.stderr


def test_option_typo_suggests_the_option_with_the_commands_usage() -> None:
    p = sv("backup", "--exlude", "*.tmp", "/tmp", check=False)
    assert p.returncode == 2
    assert "did you mean --exclude" in p.stderr
    assert "shadowvault backup" in p.stderr.splitlines()[0]  # the command's usage, not the top level's
    bad = sv("backup", "--open-files", "try-deny", "/tmp", check=False)
    assert bad.returncode == 2 and "did you mean 'try-deny-write'" in bad.stderr


def test_subcommand_usage_on_a_missing_argument() -> None:
    p = sv("restore", check=False)
    assert p.returncode == 2
    assert "shadowvault restore" in p.stderr and "required" in p.stderr


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_commands_help_lists_environment_and_exit_codes(name: str) -> None:
    out = sv(name, "--help").stdout
    assert "SHADOWVAULT_CONFIG" in out and "exit codes" in out
    if getattr(COMMANDS[name], "REPOSITORY", True):
        assert "SHADOWVAULT_REPOSITORY" in out and "SHADOWVAULT_PASSWORD" in out and "--repo" in out
        assert "--password-command" in out
    else:
        # sets and activity never open a repository: they must not offer to.
        assert "--repo" not in out and "--password-file" not in out and "SHADOWVAULT_PASSWORD" not in out


def test_repository_options_on_a_command_without_a_repository() -> None:
    p = sv("sets", "--repo", "/srv/r", check=False)
    assert p.returncode == 2 and "sets does not open a repository: --repo does not apply" in p.stderr


def test_backup_help_takes_ranges_and_defaults_from_the_schema() -> None:
    out = " ".join(sv("backup", "--help").stdout.split())  # wrapped at the terminal's width
    assert "0–10 (default: 3)" in out  # retry_times in config/schema.py
    assert "0–999 (default: 10)" in out


def test_password_command(repo: Path, tmp_path: Path) -> None:
    from treeutil import PASSWORD

    script = tmp_path / "pw.sh"
    script.write_text(f"#!/bin/sh\necho '{PASSWORD}'\n")
    script.chmod(0o755)
    env = {"SHADOWVAULT_PASSWORD": ""}
    p = sv("snapshots", "--json", "--password-command", str(script), repo=repo, env_extra=env)
    assert len(json.loads(p.stdout)) == 1
    failing = sv("snapshots", "--password-command", "false", repo=repo, env_extra=env, check=False)
    assert failing.returncode == 2 and "password command 'false' exited 1" in failing.stderr
    assert PASSWORD not in failing.stderr


def test_command_index_skips_global_option_values() -> None:
    assert command_index(["--repo", "/srv/r", "snapshots"]) == 2
    assert command_index(["-q", "--config=x", "backup", "/a"]) == 2
    assert command_index(["--json"]) is None
