"""Issue 11 (7) and 16: the activity log is private, and there is one per repository.

The log holds file paths: it is created 0600 (with SQLite's -wal/-shm files) in a 0700
directory. Each repository has its own log named by its id, and `activity` shows the repository
of every session; runs with no repository keep the per-user log, and a log written by the
previous version (schema 1, no repository column, 0644 in 0755) keeps working.
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat
from pathlib import Path

from shadowvault.engine.activity import ActivityLog
from shadowvault.repo import LocalBackend, Repository
from treeutil import PASSWORD, sv

V1_SCHEMA = """
CREATE TABLE sessions (id INTEGER PRIMARY KEY AUTOINCREMENT, set_name TEXT, host TEXT NOT NULL,
  pid INTEGER NOT NULL, boot_id TEXT NOT NULL, proc_start INTEGER, started REAL NOT NULL, ended REAL,
  status TEXT NOT NULL, bytes_read INTEGER NOT NULL DEFAULT 0, bytes_added INTEGER NOT NULL DEFAULT 0,
  files_ok INTEGER, files_suspect INTEGER, files_failed INTEGER, snapshot_id TEXT, exit_code INTEGER);
CREATE TABLE files (id INTEGER PRIMARY KEY AUTOINCREMENT, session_id INTEGER NOT NULL, recorded REAL NOT NULL,
  path TEXT NOT NULL, path_raw BLOB NOT NULL, class TEXT NOT NULL, reason TEXT, message TEXT,
  attempts INTEGER NOT NULL DEFAULT 1, writers TEXT NOT NULL DEFAULT '[]', detail TEXT NOT NULL DEFAULT '{}');
CREATE TABLE warnings (id INTEGER PRIMARY KEY AUTOINCREMENT, session_id INTEGER NOT NULL,
  recorded REAL NOT NULL, message TEXT NOT NULL);
INSERT INTO sessions (set_name, host, pid, boot_id, started, ended, status, files_ok, files_suspect,
  files_failed, exit_code) VALUES ('old', 'h', 1, 'b', 1600000000, 1600000001, 'completed', 3, 0, 0, 0);
PRAGMA user_version = 1;
"""


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def _repo_id(repo: Path) -> str:
    r = Repository.open(LocalBackend(repo), PASSWORD)
    try:
        return str(r.config["id"])
    finally:
        r.close()


def test_each_repository_has_its_own_private_log_with_a_repository_column(tmp_path: Path) -> None:
    state = tmp_path / "xdg-state"
    x = {"XDG_STATE_HOME": str(state)}
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("a\n")
    repos = [tmp_path / "repo1", tmp_path / "repo2"]
    for repo in repos:
        sv("init", repo=repo)
        sv("backup", str(src), repo=repo, env_extra=x)
    sv("backup", str(src), repo=repos[0], env_extra=x)
    for repo, count in zip(repos, (2, 1), strict=True):
        rid = _repo_id(repo)
        log = state / "shadowvault" / "repositories" / f"{rid}.db"
        assert _mode(log) == 0o600
        for side in (Path(f"{log}-wal"), Path(f"{log}-shm")):
            assert not side.exists() or _mode(side) == 0o600
        assert _mode(log.parent) == 0o700 and _mode(log.parent.parent) == 0o700
        sessions = json.loads(sv("activity", "--json", repo=repo, env_extra=x).stdout)
        assert [s["repository"] for s in sessions] == [rid] * count
        text = sv("activity", repo=repo, env_extra=x).stdout
        assert "Repository" in text.splitlines()[0] and rid[:8] in text
    assert not (state / "shadowvault" / "activity.db").exists()


def test_a_log_of_the_previous_version_keeps_working_and_becomes_private(tmp_path: Path) -> None:
    state = tmp_path / "xdg-state" / "shadowvault"
    state.mkdir(parents=True, mode=0o755)
    os.chmod(state, 0o755)
    old = state / "activity.db"
    with sqlite3.connect(old) as db:
        db.executescript(V1_SCHEMA)
    os.chmod(old, 0o644)
    # No repository anywhere (the default one does not exist): the per-user log is shown.
    x = {"XDG_STATE_HOME": str(tmp_path / "xdg-state"), "XDG_DATA_HOME": str(tmp_path / "xdg-data")}
    env_no_repo = {**x, "SHADOWVAULT_REPOSITORY": ""}
    sessions = json.loads(sv("activity", "--json", env_extra=env_no_repo).stdout)
    assert [(s["set"], s["status"], s["repository"]) for s in sessions] == [("old", "completed", None)]
    assert _mode(old) == 0o600 and _mode(state) == 0o700
    # And the engine writes new sessions into it with the new column.
    with ActivityLog(old) as log:
        sid = log.start_session(None, "h", repository="abc")
        assert log.session(sid) is not None and log.session(sid).repository == "abc"  # type: ignore[union-attr]
