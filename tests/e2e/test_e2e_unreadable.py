"""Issue 11 (1): a directory the user may not read is a failed entry, never a silent omission.

Run as an unprivileged user (root reads everything): the CLI runs in a child process that drops to
``nobody`` before it parses its arguments, as tests/e2e/test_e2e_openfiles.py does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from conftest import require_root
from treeutil import env

NOBODY = 65534
AS_NOBODY = (
    "import os, sys\n"
    "from shadowvault.cli import main\n"
    "import shadowvault.config, shadowvault.cli.commands\n"
    "shadowvault.cli.commands.load_all()  # command modules are imported when first used\n"
    # The interpreter lives under /root here: load lazily imported codecs before dropping root.
    "import encodings.ascii, encodings.latin_1, encodings.utf_8, encodings.idna\n"
    "os.setgid(65534); os.setuid(65534)\n"
    "raise SystemExit(main(sys.argv[1:]))\n"
)


def _open_path(tmp: Path) -> None:
    """Let ``nobody`` reach ``tmp`` (pytest's temp dirs are 0700)."""
    for d in [tmp, *tmp.parents]:
        if d == Path("/tmp"):
            break
        os.chmod(d, 0o755)


def _as_nobody(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    extra = {"HOME": str(home), "XDG_STATE_HOME": str(home / "state"), "XDG_CACHE_HOME": str(home / "cache")}
    return subprocess.run(
        [sys.executable, "-c", AS_NOBODY, *args],
        capture_output=True,
        text=True,
        env=env(None, **extra),
        timeout=120,
    )


def _lines(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def _setup(tmp_path: Path) -> tuple[Path, Path, Path]:
    require_root()
    _open_path(tmp_path)
    home = tmp_path / "home"
    home.mkdir()
    os.chown(home, NOBODY, NOBODY)
    repo = home / "repo"
    p = _as_nobody(home, "init", "--repo", str(repo))
    assert p.returncode == 0, p.stderr
    src = tmp_path / "src"
    (src / "open").mkdir(parents=True)
    (src / "open" / "a.txt").write_text("readable\n")
    (src / "closed").mkdir()
    (src / "closed" / "secret.txt").write_text("not for nobody\n")
    (src / "z.txt").write_text("also readable\n")
    for d in (src, src / "open"):
        os.chmod(d, 0o755)
    os.chmod(src / "closed", 0o000)
    return home, repo, src


def test_unreadable_directory_is_failed_in_summary_report_and_json(tmp_path: Path) -> None:
    home, repo, src = _setup(tmp_path)
    p = _as_nobody(home, "backup", "--json", "--repo", str(repo), str(src))
    assert p.returncode == 3, p.stdout + p.stderr
    lines = _lines(p.stdout)
    failed = [d for d in lines if d.get("message_type") == "file"]
    assert [(d["path"], d["class"], d["reason"]) for d in failed] == [
        (str(src / "closed"), "failed", "permission-denied")
    ]
    summary = next(d for d in lines if d.get("message_type") == "summary")
    assert summary["files_failed"] == 1 and summary["files_ok"] == 2
    assert summary["exit_code"] == 3 and summary["snapshot_id"]

    # The snapshot's outcomes name it, so `report` shows it on any machine (text and JSON).
    rep = _as_nobody(home, "report", "--json", "--repo", str(repo), "latest")
    assert rep.returncode == 0, rep.stderr
    doc = json.loads(rep.stdout)
    assert [(f["path"], f["class"]) for f in doc["files"]] == [(str(src / "closed"), "failed")]
    assert doc["summary"]["failed"] == 1
    text = _as_nobody(home, "report", "--repo", str(repo), "latest")
    assert f"failed   {src / 'closed'}" in text.stdout, text.stdout
    assert "cannot list directory: Permission denied" in text.stdout

    # The activity session counts it too.
    act = _as_nobody(home, "activity", "--json", "--repo", str(repo))
    assert act.returncode == 0, act.stderr
    [session] = json.loads(act.stdout.splitlines()[-1])
    assert session["counts"]["failed"] == 1 and session["exit_code"] == 3


def test_unreadable_source_root_fails_the_set(tmp_path: Path) -> None:
    home, repo, src = _setup(tmp_path)
    closed = src / "closed"
    p = _as_nobody(home, "backup", "--repo", str(repo), str(closed))
    assert p.returncode == 1, p.stdout + p.stderr
    assert (
        p.stderr.strip().splitlines()[-1].startswith(f"error: cannot read source {closed}: Permission denied")
    )
    assert "Traceback" not in p.stderr
    assert not list((repo / "snapshots").iterdir())
    act = _as_nobody(home, "activity", "--json", "--repo", str(repo))
    [session] = json.loads(act.stdout.splitlines()[-1])
    assert session["status"] == "failed" and session["exit_code"] == 1
    assert session["counts"]["failed"] == 1
    rep = _as_nobody(home, "report", "--json", "--repo", str(repo), str(session["id"]))
    assert [(f["path"], f["class"]) for f in json.loads(rep.stdout)["files"]] == [(str(closed), "failed")]
