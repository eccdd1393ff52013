"""Helpers shared by the hot-backup tests: a config file per test and the CLI runs."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from dbservers import DbServer
from treeutil import sv


def xdg(tmp: Path) -> dict[str, str]:
    """Per-test state directory: the activity log of one test is never seen by another."""
    return {"XDG_STATE_HOME": str(tmp / "xdg-state"), "XDG_DATA_HOME": str(tmp / "xdg-data")}


def server_keys(server: DbServer, *, password_file: str | None = None) -> str:
    return (
        f'host = "{server.host}"\nport = {server.port}\nuser = "{server.user}"\n'
        f'password_file = "{password_file or server.password_file}"\n'
    )


def write_config(tmp: Path, body: str) -> Path:
    """A config with this test's repository (initialised) and the given sets."""
    repo = tmp / "repo"
    if not repo.exists():
        sv("init", repo=repo)
    cfg = tmp / "config.toml"
    cfg.write_text(f'[repository]\npath = "{repo}"\n\n{body}')
    return cfg


def backup(tmp: Path, cfg: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return sv("backup", "--config", str(cfg), *args, repo=tmp / "repo", check=False, env_extra=xdg(tmp))


def json_lines(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def restic(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    from treeutil import env

    return subprocess.run(
        ["restic", *args], capture_output=True, text=True, env=env(tmp / "repo"), timeout=300, check=False
    )
