"""Issue 16: key list|add|passwd|remove, judged by restic (its key list, and opening with each password)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from conftest import require_binary
from treeutil import PASSWORD, env, restic, sv


def _restic_opens(repo: Path, password: str) -> bool:
    e = env(repo, RESTIC_PASSWORD=password)
    p = subprocess.run(["restic", "--no-cache", "snapshots", "-q"], env=e, capture_output=True, timeout=120)
    return p.returncode == 0


def test_key_add_passwd_remove(tmp_path: Path) -> None:
    require_binary("restic")
    repo = tmp_path / "repo"
    sv("init", repo=repo)
    new = tmp_path / "new"
    new.write_text("second password\n")
    sv("key", "add", "--new-password-file", str(new), repo=repo)
    ours = json.loads(sv("key", "list", "--json", repo=repo).stdout)
    theirs = json.loads(restic("key", "list", "--json", repo=repo).stdout)
    assert sorted(k["id"][:8] for k in ours) == sorted(k["id"][:8] for k in theirs)  # restic: short ids
    assert [k["current"] for k in ours].count(True) == 1
    assert _restic_opens(repo, "second password") and _restic_opens(repo, PASSWORD)

    current = next(k["id"] for k in ours if k["current"])
    refused = sv("key", "remove", current[:8], repo=repo, check=False)
    assert refused.returncode == 2 and "opened this session" in refused.stderr
    other = next(k["id"] for k in ours if not k["current"])
    sv("key", "remove", other[:8], repo=repo)
    assert not _restic_opens(repo, "second password")

    third = tmp_path / "third"
    third.write_text("third password\n")
    sv("key", "passwd", "--new-password-file", str(third), repo=repo)
    assert _restic_opens(repo, "third password") and not _restic_opens(repo, PASSWORD)
    listed = sv("key", "list", "--json", repo=repo, env_extra={"SHADOWVAULT_PASSWORD": "third password"})
    assert [k["current"] for k in json.loads(listed.stdout)] == [True]
