"""A SQLite writer's rollback journal names its writer (issue 9).

The journal is a new inode per transaction, gone a millisecond later: the /proc index never
holds it. Its writer is found through the database file it belongs to.
"""

from __future__ import annotations

import os
from pathlib import Path

from tests.conftest import require_root
from tests.openfiles.of_helpers import Child

from shadowvault.openfiles import LeaseState, OpenFiles, Strategy
from shadowvault.openfiles.writers import main_file_of

ROLLBACK_WRITER = """
import sqlite3
con = sqlite3.connect(sys.argv[2], isolation_level=None, timeout=60)
con.execute("PRAGMA journal_mode=DELETE")
con.execute("CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v BLOB)")
print("ready", flush=True)
while True:
    con.execute("BEGIN IMMEDIATE")
    for _ in range(50):
        con.execute("INSERT INTO t(v) VALUES (randomblob(300))")
    con.execute("COMMIT")
"""


def test_main_file_of_names_the_database() -> None:
    assert main_file_of(b"/d/app.db-journal") == b"/d/app.db"
    assert main_file_of(b"/d/app.db-wal") == b"/d/app.db"
    assert main_file_of(b"/d/x-shm") == b"/d/x"
    assert main_file_of(b"/d/-wal") is None
    assert main_file_of(b"/d/app.db") is None


def test_journal_held_by_a_sqlite_writer_names_the_process(tmp_path: Path) -> None:
    require_root()  # leases on the journal, which the writer (root) owns
    db = tmp_path / "app.db"
    journal = os.fsencode(str(db) + "-journal")
    with Child(ROLLBACK_WRITER, str(db), comm="sqlwriter") as child, OpenFiles() as of:
        child.wait_ready()
        refused = named = 0
        for _ in range(2000):
            with of.attempt(journal, Strategy.TRY_DENY_WRITE) as att:
                att.read()
            result = att.result()
            if result.lease is LeaseState.REFUSED:
                refused += 1
                named += [(w.pid, w.command) for w in result.writers] == [(child.pid, "sqlwriter")]
            if refused >= 20:
                break
        assert refused >= 20, "the writer's journal was never caught open"
        assert named == refused, f"only {named} of {refused} refused reads named the writer"
