"""Issue 16: the README's first two commands do all the set-up on a fresh machine, in that order,
as a normal user: a git clone of this checkout, a new virtualenv, no HOME of ours, and (when the
tests run as root) the unprivileged user ``nobody``. The second command runs with its pytest
narrowed to tests/test_project.py (lint, types, layering, the README/CI match), which needs every
test extra installed by the command itself."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import require_binary

ROOT = Path(__file__).resolve().parent.parent


def readme_commands() -> tuple[str, str]:
    """The README's install command and its test command (the first two indented lines)."""
    lines = (ROOT / "README.md").read_text().splitlines()[:12]
    commands = [line.strip() for line in lines if line.startswith("    ")]
    return commands[0], commands[1]


@pytest.fixture
def fresh_dir() -> Iterator[Path]:
    # Not pytest's tmp_path: its parents are 0700 root directories that another user cannot enter.
    path = Path(tempfile.mkdtemp(prefix="shadowvault-fresh-", dir="/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_readme_commands_set_everything_up_in_a_clean_virtualenv_as_a_normal_user(fresh_dir: Path) -> None:
    require_binary("git")
    first, second = readme_commands()
    project, home, venv = fresh_dir / "shadowvault", fresh_dir / "home", fresh_dir / "venv"
    # What is committed is what a fresh machine gets.
    subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(ROOT), str(project)], check=True)
    home.mkdir()

    as_user: list[str] = []
    uid = os.geteuid()
    if uid == 0:
        nobody = pwd.getpwnam("nobody")
        uid = nobody.pw_uid
        for path in [fresh_dir, *fresh_dir.rglob("*")]:
            os.lchown(path, nobody.pw_uid, nobody.pw_gid)
        as_user = ["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}", "--clear-groups", "--"]
    env = {
        "HOME": str(home),
        "PATH": f"{venv}/bin:/usr/local/bin:/usr/bin:/bin",
        "VIRTUAL_ENV": str(venv),
        "LANG": "C.UTF-8",
    }

    def run(command: str, timeout: float) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*as_user, "bash", "-c", command],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    # The interpreter a normal user finds (ours may live under /root, e.g. pyenv's).
    python3 = shutil.which("python3", path="/usr/local/bin:/usr/bin:/bin") if as_user else sys.executable
    assert python3, "no python3 on the standard PATH"
    made = run(f"{python3} -m venv {venv}", 300)
    assert made.returncode == 0, made.stderr
    assert run("id -u", 60).stdout.strip() == str(uid) != "0"

    p = run(first, 1800)
    assert p.returncode == 0, f"{first!r} exited {p.returncode}\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
    assert (home / ".local" / "share" / "shadowvault" / "repo" / "config").is_file()
    assert list((home / ".local" / "share" / "shadowvault" / "repo" / "snapshots").iterdir())

    narrowed = f"{second} tests/test_project.py"
    p = run(narrowed, 2400)
    assert p.returncode == 0, f"{narrowed!r} exited {p.returncode}\n{p.stdout[-5000:]}\n{p.stderr[-3000:]}"
    assert " passed" in p.stdout and "failed" not in p.stdout
