"""Without CAP_LEASE: one warning per session, stat-based classes, writers still named where visible.

The session runs in a child Python that drops to uid/gid 65534 (nobody) after importing
everything it needs, on files owned by root in a world-readable directory. Its writers
are separate processes started as nobody, so nobody's /proc scan can see them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import require, require_root
from tests.openfiles.of_helpers import APPEND_LOOP, HOLD_OPEN_FOR_WRITING, SRC, Child

NOBODY = 65534

SESSION = """
import json, os, sys, time
import encodings.ascii, encodings.utf_8  # imports after setuid could not read the root-only stdlib
sys.path.insert(0, sys.argv[1])
from shadowvault.openfiles import OpenFiles, RetryPolicy, Strategy, decide

plan = json.loads(sys.argv[2])
os.setgroups([])
os.setgid(65534)
os.setuid(65534)
warnings = []
results = {}
with OpenFiles(on_warning=warnings.append) as of:
    for name, strategy in plan:
        with of.attempt(os.path.join(sys.argv[3], name), Strategy(strategy)) as att:
            while att.readinto(bytearray(4096)):
                time.sleep(0.01)
        attempt = att.result()
        out = decide([attempt], Strategy(strategy), RetryPolicy())
        results[name + "/" + strategy] = {"outcome": out.to_json(), "attempt": attempt.to_json()}
print(json.dumps({"uid": os.getuid(), "warnings": warnings, "results": results}))
"""

PLAN = [
    ("static", "try-deny-write"),
    ("busy", "try-deny-write"),
    ("busy", "deny-write"),
    ("busy", "prevent-write"),
    ("appended", "allow-write"),
    ("appended", "try-deny-write"),
    ("owned", "deny-write"),
    ("secret", "try-deny-write"),
    ("static", "deny-write"),
]


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    require_root()
    d = Path(tempfile.mkdtemp(prefix="sv-of-nobody-", dir="/tmp"))
    try:
        d.chmod(0o755)
        yield d
    finally:
        shutil.rmtree(d)


def make(path: Path, mode: int, owner: int = 0) -> Path:
    path.write_bytes(os.urandom(32 * 1024))
    os.chown(path, owner, owner)
    path.chmod(mode)
    return path


def test_unprivileged_session_warns_once_and_classifies_by_stat(shared_dir: Path) -> None:
    py = "/usr/bin/python3"
    require(os.access(py, os.X_OK), "needs a system python3 that nobody may run (writers run as nobody)")
    make(shared_dir / "static", 0o644)
    busy = make(shared_dir / "busy", 0o666)
    appended = make(shared_dir / "appended", 0o666)
    make(shared_dir / "owned", 0o644, owner=NOBODY)
    make(shared_dir / "secret", 0o600)
    with (
        Child(HOLD_OPEN_FOR_WRITING, str(busy), comm="svholder", python=py, user=NOBODY) as holder,
        Child(APPEND_LOOP, str(appended), comm="svappender", python=py, user=NOBODY) as appender,
    ):
        holder.wait_ready()
        appender.wait_ready()
        run = subprocess.run(
            [sys.executable, "-c", SESSION, SRC, json.dumps(PLAN), str(shared_dir)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["uid"] == NOBODY
    assert len(report["warnings"]) == 1
    assert "read leases are not available" in report["warnings"][0]
    res: dict[str, Any] = report["results"]

    def outcome(key: str) -> tuple[str, str]:
        o = res[key]["outcome"]
        return o["class"], o["reason"]

    holder_json = [{"pid": holder.pid, "command": "svholder"}]
    assert outcome("static/try-deny-write") == ("ok", "unchanged")
    assert res["static/try-deny-write"]["attempt"]["lease"] == "unsupported"
    assert outcome("static/deny-write") == ("ok", "unchanged")
    assert outcome("busy/try-deny-write") == ("suspect", "open-for-writing")
    assert res["busy/try-deny-write"]["outcome"]["writers"] == holder_json
    assert outcome("busy/deny-write") == ("failed", "open-for-writing")
    assert res["busy/deny-write"]["outcome"]["message"] == f"open for writing by svholder (pid {holder.pid})"
    assert outcome("busy/prevent-write") == ("ok", "read-under-lock")
    assert res["busy/prevent-write"]["outcome"]["writers"] == holder_json
    assert outcome("appended/allow-write") == ("suspect", "changed-during-read")
    assert outcome("appended/try-deny-write") == ("suspect", "changed-during-read")
    assert res["appended/allow-write"]["outcome"]["writers"] == [
        {"pid": appender.pid, "command": "svappender"}
    ]
    assert outcome("owned/deny-write") == ("ok", "read-under-lease")  # our own file: leases work
    assert outcome("secret/try-deny-write") == ("failed", "permission-denied")
