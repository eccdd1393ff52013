"""A small machine's history for the status, metrics and web tests, made by real runs.

Four sets in one configuration:

* ``docs`` (try-deny-write): ``held<b>.log`` is open for writing by a real ``sleep`` process, so it is
  backed up ``suspect``; the set runs twice, so it has two runs. Its tree also holds names with a
  non-UTF-8 byte, quotes and ``<script>``.
* ``db`` (deny-write, no retries): ``data.db`` is held open the same way, so it ``failed``;
  ``other.bin`` (200 kB of random bytes) is stored.
* ``broken``: its source does not exist, so its run failed without a snapshot.
* ``nightly``: scheduled hourly, never run.

Then ``check`` runs once, so the repository has a recorded check.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from treeutil import sv

# File names cannot hold "/", so the closing tag is left out; an opening tag is enough to inject.
WEIRD_NAMES = (
    b"bad\xffname.txt",
    b"quote\"s'.txt",
    b"<script>alert(1)<.txt",
    b"<img src=x onerror=alert(2)>",
)


@dataclass
class Scenario:
    root: Path
    repo: Path
    config: Path
    env: dict[str, str]
    docs: Path
    held: Path
    failed: Path
    writer_pid: int
    writer_command: str
    runs_of_docs: int

    def sv(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return sv(*args, repo=self.repo, env_extra=self.env, check=check)


def hold_open(*paths: Path) -> subprocess.Popen[bytes]:
    """A real `sleep` process with every path open for writing; returns once it holds them."""
    redirs = " ".join(f"{3 + i}>>'{p}'" for i, p in enumerate(paths))
    proc = subprocess.Popen(["sh", "-c", f"exec {redirs} sleep 300"])
    wanted = {str(p) for p in paths}
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            held = {os.readlink(f"/proc/{proc.pid}/fd/{fd}") for fd in os.listdir(f"/proc/{proc.pid}/fd")}
            comm = Path(f"/proc/{proc.pid}/comm").read_text().strip()
        except OSError:
            held, comm = set(), ""
        if wanted <= held and comm == "sleep":
            return proc
        time.sleep(0.01)
    proc.kill()
    raise AssertionError(f"writer never opened {wanted}")


def make_scenario(root: Path) -> Scenario:
    """Run the history described in the module docstring under ``root``."""
    repo = root / "repo"
    docs = root / "docs"
    db = root / "db"
    (docs / "sub").mkdir(parents=True)
    db.mkdir()
    (docs / "quiet.txt").write_text("nobody writes me\n")
    (docs / "sub" / "deep.bin").write_bytes(os.urandom(300_000))
    for name in WEIRD_NAMES:
        with open(os.path.join(os.fsencode(docs), name), "wb") as f:
            f.write(b"unusual name " + name)
    held = docs / "held<b>.log"  # markup in a problem file's name: the overview and session pages
    held.write_bytes(b"log line\n" * 1000)
    failed = db / "data.db"
    failed.write_bytes(b"d" * 5000)
    (db / "other.bin").write_bytes(os.urandom(200_000))  # stored: only the db snapshot references it
    config = root / "shadowvault.toml"
    config.write_text(
        f'[repository]\npath = "{repo}"\n\n'
        f'[sets.docs]\nsources = ["{docs}"]\nopen_files = "try-deny-write"\n\n'
        f'[sets.db]\nsources = ["{db}"]\nopen_files = "deny-write"\nretry_times = 0\n\n'
        f'[sets.broken]\nsources = ["{root / "missing"}"]\n\n'
        f'[sets.nightly]\nsources = ["{docs}"]\nschedule = "hourly"\n'
    )
    env = {
        "XDG_STATE_HOME": str(root / "xdg-state"),
        "XDG_DATA_HOME": str(root / "xdg-data"),
        "XDG_CONFIG_HOME": str(root / "xdg-config"),
        "SHADOWVAULT_CONFIG": str(config),
    }
    sv("init", repo=repo, env_extra=env)
    writer = hold_open(held, failed)
    try:
        command = Path(f"/proc/{writer.pid}/comm").read_text().strip()
        first = sv(
            "backup", "--set", "docs", "--set", "db", "--set", "broken", repo=repo, env_extra=env, check=False
        )
        assert first.returncode == 1, first.stderr  # worst of 4 (docs), 3 (db) and 1 (broken)
        second = sv("backup", "--set", "docs", repo=repo, env_extra=env, check=False)
        assert second.returncode == 4, second.stderr
    finally:
        writer.kill()
        writer.wait()
    sv("check", repo=repo, env_extra=env)
    return Scenario(root, repo, config, env, docs, held, failed, writer.pid, command, runs_of_docs=2)
