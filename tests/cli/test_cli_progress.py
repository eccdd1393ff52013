"""Issue 16: backup progress on a terminal (tmux) shows a percentage and an ETA; --json gives
restic-style status lines with totals from the concurrent scan; -q shows nothing."""

from __future__ import annotations

import itertools
import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import require_binary
from treeutil import env, sv


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("progress") / "src"
    for d in range(20):
        (src / f"d{d}").mkdir(parents=True)
        for f in range(150):
            (src / f"d{d}" / f"f{f}.txt").write_bytes(os.urandom(2048))
    (src / "big.bin").write_bytes(os.urandom(96 * 1024 * 1024))
    return src


_SESSIONS = itertools.count()
# KiB/s: the tree's 102 MiB take ~2.5 s. The backup and the check are rate-limited because on a
# fast machine either can end before its first frame with totals (the backup's counting child had
# not even started), and these tests are about the display while a step runs.
_RATE = 40_000
_SLOW_RATE = 2_000  # KiB/s: the 3,000 small files' 5.9 MiB take ~3 s


def _frames_in_tmux(repo: Path, args: str, want: str) -> list[str]:
    """Run ``shadowvault ARGS`` in a tmux pane; the screens that show a percentage, ETA and the
    regular expression ``want``."""
    require_binary("tmux")
    e = env(repo)
    exports = " ".join(
        f"{k}={shlex.quote(e[k])}" for k in ("PYTHONPATH", "SHADOWVAULT_PASSWORD", "SHADOWVAULT_REPOSITORY")
    )
    session = f"svprogress{os.getpid()}-{next(_SESSIONS)}"
    # COLUMNS: a detached tmux session may report its default width (80) to the program whatever
    # -x says, and rich then squeezes the bar, byte and speed columns out of the line.
    cmd = f"env {exports} COLUMNS=200 {sys.executable} -m shadowvault {args}; echo EXITED $?; sleep 30"
    new = ["tmux", "new-session", "-d", "-s", session, "-x", "220", "-y", "20", cmd]
    # The previous call's kill-session can leave the tmux server exiting just as this one asks it
    # for a session ("lost server"): ask again.
    for attempt in range(5):
        if subprocess.run(new, capture_output=True).returncode == 0:
            break
        time.sleep(0.2 * (attempt + 1))
    else:
        subprocess.run(new, check=True)
    seen: list[str] = []
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            screen = subprocess.run(
                ["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True, check=True
            ).stdout
            seen.append(screen)
            if (
                re.search(r"\d+\.\d\d%", screen) and "ETA" in screen and want in screen
            ) or "EXITED" in screen:
                break
            time.sleep(0.1)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], check=False)
    frames = [s for s in seen if re.search(r"\d+\.\d\d%", s) and "ETA" in s and re.search(want, s)]
    assert frames, "no frame with a percentage and an ETA:\n" + "\n----\n".join(seen[-3:])
    return frames


def test_terminal_shows_percentage_and_eta(tree: Path, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    sv("init", repo=repo)
    frames = _frames_in_tmux(repo, f"backup --limit-upload {_RATE} {tree}", "/3001 files")
    assert "MiB" in frames[-1]
    sv("backup", "-q", str(tree), repo=repo)  # the pane above was closed mid-backup
    target = tmp_path / "restored"
    # The small files only, slowly: a restore's totals are final when its walk has planned every
    # file, and the walk waits for the reads once a few tasks are queued, which big.bin's 96 MiB
    # fill; unlimited, this machine restores the whole tree before a frame with totals is drawn.
    restore = f"restore --exclude big.bin --limit-download {_SLOW_RATE} latest --target {target}"
    frames = _frames_in_tmux(repo, restore, "/3000 files")
    assert "MiB" in frames[-1]
    frames = _frames_in_tmux(repo, f"check --read-data --limit-download {_RATE}", r"\d+/[1-9]\d* packs")
    assert "MiB" in frames[-1]


def test_json_status_lines_carry_totals(tree: Path, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    sv("init", repo=repo)
    lines = [json.loads(x) for x in sv("backup", "--json", str(tree), repo=repo).stdout.splitlines()]
    status = [x for x in lines if x.get("message_type") == "status"]
    assert status, lines[-1]
    last = status[-1]
    assert last["total_files"] == 3001 and last["total_bytes"] >= 96 * 1024 * 1024
    assert last["files_done"] == 3001 and last["percent_done"] == 1.0 and "error_count" in last
    assert lines[-1]["message_type"] == "summary"
    # A backup shorter than the status interval still ends on a status line with its counts.
    lines = [
        json.loads(x) for x in sv("backup", "--json", "--force", str(tree), repo=repo).stdout.splitlines()
    ]
    last = [x for x in lines if x.get("message_type") == "status"][-1]
    assert last["files_done"] == last["total_files"] == 3001 and last["percent_done"] == 1.0
    quiet = sv("backup", "-q", str(tree), repo=repo)
    assert quiet.stdout == "" and quiet.stderr == ""
