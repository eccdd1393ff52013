"""Database groups and the SQLite copy: the pure decisions and the real copy (engine/dbgroups.py,
engine/dbcapture.py, engine/hotbackup/sqlite.py)."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

from shadowvault.engine.dbcapture import CaptureAttempt, decide_capture
from shadowvault.engine.dbgroups import DatabaseNames, group_verdict, member_states, torn_outcome
from shadowvault.engine.hotbackup.sqlite import (
    SQLITE_HEADER,
    SqliteCopy,
    SqliteFailure,
    copy_database,
    has_sqlite_header,
    read_header,
    remove_stale_copies,
)
from shadowvault.openfiles import Classification, FileOutcome, Reason, Retry, RetryPolicy, WriterInfo

POLICY = RetryPolicy(times=2, interval=5, on_change=False)
WRITER = WriterInfo(42, "app")


def make_db(path: Path, rows: int = 100) -> None:
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE t(v)")
    con.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(rows)])
    con.commit()
    con.close()


# ---- pure ---------------------------------------------------------------------------------------


def test_header_check_takes_the_16_bytes_exactly() -> None:
    assert has_sqlite_header(SQLITE_HEADER + b"rest")
    assert has_sqlite_header(memoryview(SQLITE_HEADER))
    assert not has_sqlite_header(b"SQLite format 3")  # 15 bytes: no NUL
    assert not has_sqlite_header(b"")
    assert not has_sqlite_header(b"sqlite format 3\x00")


def test_companion_names_are_noted_from_the_listing() -> None:
    names = DatabaseNames()
    names.listed(b"/d", [b"a.db", b"a.db-wal", b"b.db", b"x-journal", b"-shm", b"notes.txt"])
    assert names.has_listed_companions(b"/d/a.db")
    assert names.has_listed_companions(b"/d/x")
    assert not names.has_listed_companions(b"/d/b.db")
    assert not names.has_listed_companions(b"/d/")
    assert not names.companion_of_database(b"/d/a.db-wal")  # a.db not recognised yet
    names.mark_database(b"/d/a.db")
    assert names.companion_of_database(b"/d/a.db-wal") and names.companion_of_database(b"/d/a.db-shm")
    assert not names.companion_of_database(b"/d/a.db.bak")


def test_a_copy_is_ok_and_names_the_writer() -> None:
    copy = SqliteCopy(Path("/x"), 10, 0.003)
    out = decide_capture([CaptureAttempt(1, copy, (WRITER,))], POLICY)
    assert isinstance(out, FileOutcome)
    assert out.classification is Classification.OK and out.reason is Reason.SQLITE_BACKUP
    assert out.message.startswith("sqlite online backup (read transaction 3 ms)")
    assert "app (pid 42)" in out.message and out.writers == (WRITER,)


def test_busy_is_retried_then_failed_naming_the_holder() -> None:
    busy = SqliteFailure("busy", "the database stayed locked")
    attempts = [CaptureAttempt(1, busy, (WRITER,))]
    step = decide_capture(attempts, POLICY)
    assert isinstance(step, Retry) and step.after == 5 and step.reason is Reason.DATABASE_BUSY
    attempts += [CaptureAttempt(2, busy, ()), CaptureAttempt(3, busy, ())]
    out = decide_capture(attempts, POLICY)
    assert isinstance(out, FileOutcome) and out.classification is Classification.FAILED
    assert out.reason is Reason.DATABASE_BUSY and out.attempts == 3
    assert out.writers == (WRITER,) and "held by app (pid 42)" in out.message


def test_a_copy_that_cannot_be_made_is_not_retried() -> None:
    out = decide_capture([CaptureAttempt(1, SqliteFailure("quick-check", "bad page"), ())], POLICY)
    assert isinstance(out, FileOutcome)
    assert out.classification is Classification.FAILED and out.reason is Reason.DATABASE_ERROR


def test_group_fits_only_when_nothing_moved_and_every_read_is_ok(tmp_path: Path) -> None:
    db, wal = tmp_path / "a.db", tmp_path / "a.db-wal"
    db.write_bytes(b"1")
    wal.write_bytes(b"2")
    paths = [os.fsencode(db), os.fsencode(wal)]
    ok = FileOutcome.ok(1, Reason.READ_UNDER_LEASE, "read under a read lease")
    before = member_states(paths)
    assert group_verdict(paths, [ok, ok], before, member_states(paths)) == (True, "")
    wal.write_bytes(b"22")
    fits, why = group_verdict(paths, [ok, ok], before, member_states(paths))
    assert not fits and str(wal) in why
    suspect = FileOutcome(Classification.SUSPECT, Reason.CHANGED_DURING_READ, "changed", 1)
    now = member_states(paths)
    fits, why = group_verdict(paths, [ok, suspect], now, now)
    assert not fits and "changed" in why
    torn = torn_outcome(ok, why, 2, (WRITER,))
    assert torn.classification is Classification.SUSPECT and torn.reason is Reason.GROUP_CHANGED
    failed = FileOutcome(Classification.FAILED, Reason.IO_ERROR, "read error", 1)
    assert torn_outcome(failed, why, 2, ()) is failed


# ---- the real copy ------------------------------------------------------------------------------


def test_copy_of_a_database_is_private_and_complete(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    make_db(db)
    assert has_sqlite_header(read_header(os.fsencode(db)))
    result = copy_database(os.fsencode(db), tmp_path / "tmp", busy_timeout=1, quick_check=True)
    assert isinstance(result, SqliteCopy)
    assert stat.S_IMODE(result.path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "tmp").stat().st_mode) == 0o700
    con = sqlite3.connect(result.path)
    assert con.execute("SELECT count(*) FROM t").fetchone() == (100,)
    con.close()
    assert sorted(os.listdir(tmp_path / "tmp")) == [result.path.name]  # no journal of the copy


def test_header_only_file_is_not_a_database(tmp_path: Path) -> None:
    fake = tmp_path / "fake.db"
    fake.write_bytes(SQLITE_HEADER + os.urandom(4000))
    result = copy_database(str(fake), tmp_path / "tmp", busy_timeout=1)
    assert isinstance(result, SqliteFailure) and result.kind in ("not-a-database", "corrupt")
    assert os.listdir(tmp_path / "tmp") == []  # the failed copy's file is gone


def test_exclusive_lock_makes_the_copy_busy_within_the_timeout(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    make_db(db)
    holder = textwrap.dedent(
        """
        import sqlite3, sys, time
        con = sqlite3.connect(sys.argv[1], isolation_level=None)
        con.execute("BEGIN EXCLUSIVE")
        con.execute("INSERT INTO t VALUES (1)")
        print("ready", flush=True)
        time.sleep(60)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", holder, str(db)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        result = copy_database(str(db), tmp_path / "tmp", busy_timeout=0.5)
    finally:
        proc.kill()
        proc.communicate()
    assert isinstance(result, SqliteFailure) and result.kind == "busy" and result.retryable


def test_stale_copies_of_dead_sessions_are_removed(tmp_path: Path) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    (tmp_path / f"sqlite-copy-{dead.pid}-abc.db").write_bytes(b"x")
    mine = tmp_path / f"sqlite-copy-{os.getpid()}-def.db"
    mine.write_bytes(b"y")
    (tmp_path / "other").write_bytes(b"z")
    removed = remove_stale_copies(tmp_path)
    assert [p.name for p in removed] == [f"sqlite-copy-{dead.pid}-abc.db"]
    assert sorted(os.listdir(tmp_path)) == sorted([mine.name, "other"])


def test_a_copy_failing_quick_check_is_refused(tmp_path: Path) -> None:
    """The online backup copies pages as they are; quick_check of the copy finds the damage."""
    db = tmp_path / "c.db"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, k TEXT)")
    con.execute("CREATE INDEX ik ON t(k)")
    con.executemany("INSERT INTO t(k) VALUES (?)", [(os.urandom(20).hex(),) for _ in range(3000)])
    con.commit()
    size, count = (
        con.execute("PRAGMA page_size").fetchone()[0],
        con.execute("PRAGMA page_count").fetchone()[0],
    )
    con.close()
    with open(db, "r+b") as f:
        f.seek((count // 2) * size)
        f.write(b"\x0d" + os.urandom(size - 1))
    unchecked = copy_database(str(db), tmp_path / "tmp", busy_timeout=1)
    assert isinstance(unchecked, SqliteCopy)
    unchecked.path.unlink()
    checked = copy_database(str(db), tmp_path / "tmp", busy_timeout=1, quick_check=True)
    assert isinstance(checked, SqliteFailure) and checked.kind == "quick-check", checked
    assert "quick_check" in checked.message and os.listdir(tmp_path / "tmp") == []


def test_api_session_without_a_state_dir_copies_into_a_private_dir_it_removes(tmp_path: Path) -> None:
    """Through the Python API (no state directory given): the copy is made in a private temporary
    directory, which is gone when the session ends."""
    import tempfile

    from shadowvault.engine.backup import BackupOptions, BackupSession
    from shadowvault.engine.events import FileDone, ListSink
    from shadowvault.repo import LocalBackend, Repository
    from treeutil import PASSWORD, sv

    src = tmp_path / "src"
    src.mkdir()
    db = src / "a.db"
    make_db(db)
    Path(str(db) + "-wal").write_bytes(b"")  # a companion: the database counts as in use
    sv("init", repo=tmp_path / "repo")
    before = {p for p in os.listdir(tempfile.gettempdir()) if p.startswith("shadowvault-sqlite-")}
    r = Repository.open(LocalBackend(tmp_path / "repo"), PASSWORD)
    sink = ListSink()
    try:
        with r.lock(exclusive=False):
            r.load_index()
            result = BackupSession(r, BackupOptions(sources=[str(src)]), sink).run()
    finally:
        r.close()
    assert result.exit_code == 0
    done = {e.path: e.outcome for e in sink.events if isinstance(e, FileDone)}
    assert done[str(db)].reason == "sqlite-online-backup" and str(db) + "-wal" not in done
    after = {p for p in os.listdir(tempfile.gettempdir()) if p.startswith("shadowvault-sqlite-")}
    assert after <= before, after - before
