"""Helpers for the SQLite end-to-end tests: a real writer committing 50-row transactions, checks of
restored databases, and the stored outcomes of a snapshot.

The writer (its own process) commits in a tight loop, hundreds of transactions a second. Every
transaction inserts 50 rows of one batch number, deletes whole batches older than 40, and
updates ``meta`` with the batch count and the row count. A restored database holds only
complete transactions when every batch present has exactly 50 rows, the batches are one
contiguous run ending at ``meta.last``, and ``meta.total`` equals the row count.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from shadowvault.repo import LocalBackend, Repository
from treeutil import PASSWORD

WRITER = textwrap.dedent(
    """
    import os, sqlite3, sys
    path, mode = sys.argv[1], sys.argv[2]
    stop = sys.argv[3] if len(sys.argv) > 3 else None  # exit cleanly once this file exists
    con = sqlite3.connect(path, isolation_level=None, timeout=60)
    con.execute(f"PRAGMA journal_mode={mode}")
    con.execute("CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, batch INTEGER, body BLOB)")
    con.execute("CREATE INDEX IF NOT EXISTS t_batch ON t(batch)")
    con.execute("CREATE TABLE IF NOT EXISTS meta(last INTEGER, total INTEGER)")
    if con.execute("SELECT count(*) FROM meta").fetchone()[0] == 0:
        con.execute("INSERT INTO meta VALUES (-1, 0)")
    batch = con.execute("SELECT last FROM meta").fetchone()[0] + 1
    commits = 0
    while True:
        con.execute("BEGIN IMMEDIATE")
        for _ in range(50):
            con.execute("INSERT INTO t(batch, body) VALUES (?, randomblob(300))", (batch,))
        con.execute("DELETE FROM t WHERE batch <= ?", (batch - 40,))
        con.execute("UPDATE meta SET last = ?, total = (SELECT count(*) FROM t)", (batch,))
        con.execute("COMMIT")
        batch += 1
        commits += 1
        if commits == 20:
            print("running", flush=True)
        if stop and commits % 20 == 0 and os.path.exists(stop):
            con.close()  # the last close removes the WAL (and no journal is left)
            break
    """
)

#: Holds an exclusive lock (rollback mode) until killed: no reader gets in.
EXCLUSIVE_HOLDER = textwrap.dedent(
    """
    import sqlite3, sys, time
    con = sqlite3.connect(sys.argv[1], isolation_level=None)
    con.execute("PRAGMA journal_mode=DELETE")
    con.execute("CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, body BLOB)")
    con.execute("BEGIN EXCLUSIVE")
    con.execute("INSERT INTO t(body) VALUES (randomblob(100))")
    print("running", flush=True)
    time.sleep(600)
    """
)

#: Keeps a file open for writing (as an application would), doing nothing.
HOLD_OPEN = "import sys, time\nf = open(sys.argv[1], 'r+b')\nprint('running', flush=True)\ntime.sleep(600)\n"


@contextmanager
def running(script: str, *args: str, user: int | None = None) -> Iterator[subprocess.Popen[str]]:
    """Run ``script`` in its own process until the block ends; it must still be running then."""
    proc = subprocess.Popen(
        [sys.executable, "-c", script, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        user=user,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if line.strip() != "running":
            proc.kill()
            raise AssertionError(f"process did not start: {line!r} {proc.communicate(timeout=30)[1]}")
        yield proc
        if proc.returncode is None:  # not waited for by the test: it must still be running
            assert proc.poll() is None, f"the process died during the test: {proc.communicate(timeout=30)[1]}"
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)


def make_database(path: Path, mode: str) -> None:
    """A database with the writer's schema and a first batch, closed (no companion left)."""
    con = sqlite3.connect(path, isolation_level=None)
    try:
        con.execute(f"PRAGMA journal_mode={mode}")
        con.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, batch INTEGER, body BLOB)")
        con.execute("CREATE INDEX t_batch ON t(batch)")
        con.execute("CREATE TABLE meta(last INTEGER, total INTEGER)")
        con.execute("BEGIN")
        con.executemany("INSERT INTO t(batch, body) VALUES (0, randomblob(300))", [()] * 50)
        con.execute("INSERT INTO meta VALUES (0, 50)")
        con.execute("COMMIT")
    finally:
        con.close()


def check_complete(path: Path) -> int:
    """The restored database opens, passes integrity_check and holds only complete transactions.

    Returns the last committed batch number.
    """
    assert path.is_file(), f"{path} was not restored"
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        check = con.execute("PRAGMA integrity_check").fetchall()
        assert check == [("ok",)], f"{path}: integrity_check says {check[:5]}"
        last, total = con.execute("SELECT last, total FROM meta").fetchone()
        rows = con.execute("SELECT count(*) FROM t").fetchone()[0]
        assert rows == total, f"{path}: {rows} rows but the last transaction wrote {total}"
        partial = con.execute("SELECT batch, count(*) FROM t GROUP BY batch HAVING count(*) != 50").fetchall()
        assert partial == [], f"{path}: incomplete batches {partial[:5]}"
        low, high, n = con.execute("SELECT min(batch), max(batch), count(DISTINCT batch) FROM t").fetchone()
        assert high == last and n == high - low + 1, f"{path}: batches {low}..{high} ({n}) but last={last}"
        return int(last)
    finally:
        con.close()


def json_lines(stdout: str) -> list[dict[str, Any]]:
    """Every JSON object line of ``--json`` output."""
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def summary(stdout: str) -> dict[str, Any]:
    """The closing summary of ``backup --json``."""
    found = [d for d in json_lines(stdout) if d.get("message_type") == "summary"]
    assert found, f"no summary in:\n{stdout}"
    return found[-1]


def stored(repo: Path, snapshot: str) -> tuple[set[str], dict[str, dict[str, Any]]]:
    """Every path a snapshot holds, and the outcomes it records by path (read in-process: a CLI
    start per question costs seconds on a loaded machine)."""
    r = Repository.open(LocalBackend(repo), PASSWORD)
    paths: set[str] = set()
    try:
        r.load_index()
        _, snap = r.find_snapshot(snapshot)
        pending: list[tuple[str, bytes | None]] = [("", snap.tree)]
        while pending:
            prefix, tree_id = pending.pop()
            if tree_id is None:
                continue
            for node in r.load_tree(tree_id).nodes:
                path = f"{prefix}/{node.name}"
                paths.add(path)
                if node.type == "dir":
                    pending.append((path, node.subtree))
    finally:
        r.close()
    outcomes = {str(o["path"]): o for o in snap.extra["shadowvault"]["outcomes"]}
    return paths, outcomes


def stored_outcomes(repo: Path, snapshot: str) -> dict[str, dict[str, Any]]:
    """The outcomes a snapshot records in the repository, by path."""
    return stored(repo, snapshot)[1]


def stored_paths(repo: Path, snapshot: str) -> set[str]:
    """Every path a snapshot holds."""
    return stored(repo, snapshot)[0]


def restored(target: Path, original: Path) -> Path:
    """Where a restore into ``target`` puts ``original``."""
    return target / str(original).lstrip("/")
