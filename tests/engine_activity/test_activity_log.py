"""The SQLite activity log: sessions, files, warnings, crash detection with a real kill -9."""

from __future__ import annotations

import enum
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import shadowvault
from shadowvault.engine.activity import (
    ActivityLog,
    ProcessIdentity,
    current_identity,
    is_stale,
    process_start_ticks,
)
from shadowvault.errors import FatalError, UsageError

SRC = str(Path(shadowvault.__file__).resolve().parent.parent)
SNAP = "4f1a9c0e" + "0" * 56


def test_complete_session_round_trip(tmp_path: Path) -> None:
    db = tmp_path / "state" / "activity.db"  # the directory is created
    with ActivityLog(db) as log:
        sid = log.start_session("web", "host1")
        log.record_file(
            sid,
            "/srv/www/app.log",
            {
                "class": "suspect",
                "reason": "changed-during-read",
                "message": "size changed while read",
                "attempts": [{"n": 1}, {"n": 2}],
                "writers": [{"pid": 812, "command": "nginx"}],
            },
        )
        log.record_file(
            sid, b"/srv/www/caf\xe9.db", {"class": "failed", "reason": "lease-refused", "attempts": 4}
        )
        log.warn(sid, "leases unavailable on /srv: stat checks only")
        running = log.sessions()[0]
        assert running.status == "running" and running.ended is None
        assert running.counts == {"ok": 0, "suspect": 1, "failed": 1}  # counted from the file rows
        log.finish_session(
            sid,
            status="completed",
            exit_code=3,
            snapshot_id=SNAP,
            bytes_read=1000,
            bytes_added=400,
            counts={"ok": 10, "suspect": 1, "failed": 1},
        )
        other = log.start_session(None, "host1")
        log.finish_session(
            other, status="failed", exit_code=1, snapshot_id=None, bytes_read=0, bytes_added=0, counts={}
        )

    with ActivityLog(db) as log:  # reopened: everything was committed
        sessions = log.sessions()
        assert [s.id for s in sessions] == [other, sid]  # newest first
        rec = log.sessions("web")[0]
        assert rec.set_name == "web" and rec.host == "host1" and rec.pid == os.getpid()
        assert rec.status == "completed" and rec.exit_code == 3 and rec.snapshot_id == SNAP
        assert (rec.bytes_read, rec.bytes_added) == (1000, 400)
        assert rec.counts == {"ok": 10, "suspect": 1, "failed": 1}
        assert rec.warnings == ["leases unavailable on /srv: stat checks only"]
        assert rec.ended is not None and rec.started <= rec.ended <= datetime.now(UTC)
        files = log.files(sid)
        assert [f.classification for f in files] == ["suspect", "failed"]
        assert files[0].attempts == 2 and files[0].writers == [{"pid": 812, "command": "nginx"}]
        assert files[0].reason == "changed-during-read" and files[0].message == "size changed while read"
        assert files[1].path_bytes == b"/srv/www/caf\xe9.db" and files[1].path == "/srv/www/caf\\xe9.db"
        assert files[1].attempts == 4 and files[1].detail["reason"] == "lease-refused"
        assert [f.path for f in log.files(sid, ("failed",))] == ["/srv/www/caf\\xe9.db"]
        assert log.session(sid) == rec and log.session(999) is None
        assert log.session_for_snapshot("4F1A") == rec
        assert log.session_for_snapshot("ffff") is None
        assert log.sessions(limit=1)[0].id == other
        with pytest.raises(UsageError, match="not a snapshot id"):
            log.session_for_snapshot("4f%")
        with pytest.raises(ValueError):
            log.finish_session(
                sid, status="running", exit_code=0, snapshot_id=None, bytes_read=0, bytes_added=0, counts={}
            )


def test_ambiguous_snapshot_prefix(tmp_path: Path) -> None:
    with ActivityLog(tmp_path / "a.db") as log:
        for snap in ("ab12" + "0" * 60, "ab34" + "0" * 60):
            sid = log.start_session("s", "h")
            log.finish_session(
                sid, status="completed", exit_code=0, snapshot_id=snap, bytes_read=0, bytes_added=0, counts={}
            )
        with pytest.raises(UsageError, match="ambiguous"):
            log.session_for_snapshot("ab")
        found = log.session_for_snapshot("ab3")
        assert found is not None and found.snapshot_id is not None and found.snapshot_id.startswith("ab34")


class Cls(enum.Enum):
    SUSPECT = "suspect"


def test_enum_values_are_stored_by_value(tmp_path: Path) -> None:
    with ActivityLog(tmp_path / "a.db") as log:
        sid = log.start_session("s", "h")
        log.record_file(sid, "/x", {"class": Cls.SUSPECT, "reason": Cls.SUSPECT})
        assert log.files(sid)[0].classification == "suspect"


def test_file_rows_are_batched(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    writer = ActivityLog(db, batch_size=3, batch_seconds=3600)
    reader = ActivityLog(db)
    sid = writer.start_session("s", "h")

    def visible() -> int:
        with sqlite3.connect(db) as con:
            return int(con.execute("SELECT COUNT(*) FROM files").fetchone()[0])

    writer.record_file(sid, "/a", {"class": "failed"})
    writer.record_file(sid, "/b", {"class": "failed"})
    assert visible() == 0  # still in the open batch
    writer.record_file(sid, "/c", {"class": "failed"})
    assert visible() == 3  # batch full → committed
    writer.record_file(sid, "/d", {"class": "ok"})
    assert len(reader.files(sid)) == 3
    writer.warn(sid, "a warning commits pending rows first")
    assert len(reader.files(sid)) == 4
    writer.close()
    reader.close()


CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from shadowvault.engine.activity import ActivityLog
    log = ActivityLog(Path(sys.argv[1]), batch_size=1)
    sid = log.start_session("db", "child-host")
    log.record_file(sid, "/var/lib/db/data", {"class": "suspect", "reason": "writer"})
    print(sid, flush=True)
    time.sleep(60)
    """
)


@pytest.mark.parametrize("reap_first", [True, False])
def test_killed_session_shows_interrupted(tmp_path: Path, reap_first: bool) -> None:
    db = tmp_path / "activity.db"
    env = dict(os.environ, PYTHONPATH=SRC)
    with subprocess.Popen(
        [sys.executable, "-c", CHILD, str(db)], stdout=subprocess.PIPE, env=env, text=True
    ) as child:
        try:
            assert child.stdout is not None
            sid = int(child.stdout.readline())
            with ActivityLog(db) as log:
                alive = log.session(sid)
                assert alive is not None and alive.status == "running" and alive.pid == child.pid
                os.kill(child.pid, signal.SIGKILL)
                if reap_first:
                    child.wait(timeout=10)
                else:
                    # Not yet reaped: a zombie is not running anything either.
                    deadline = time.monotonic() + 5
                    while process_start_ticks(child.pid) is not None and time.monotonic() < deadline:
                        time.sleep(0.01)
                dead = log.session(sid)
                assert dead is not None and dead.status == "interrupted"
                assert dead.counts["suspect"] == 1 and dead.ended is None
                assert [s.status for s in log.sessions("db")] == ["interrupted"]
        finally:
            child.kill()
            child.wait(timeout=10)


def test_is_stale_rules() -> None:
    me = current_identity()
    assert me.pid == os.getpid() and me.start_ticks is not None and me.boot_id
    assert not is_stale(me, me.boot_id, process_start_ticks)
    assert is_stale(ProcessIdentity(me.pid, "other-boot", me.start_ticks), me.boot_id, process_start_ticks)
    reused = ProcessIdentity(me.pid, me.boot_id, me.start_ticks - 1)  # same pid, different process
    assert is_stale(reused, me.boot_id, process_start_ticks)
    assert is_stale(ProcessIdentity(12345678, me.boot_id, 5), me.boot_id, lambda pid: None)
    assert not is_stale(ProcessIdentity(1, "", None), "", lambda pid: 42)  # no identity data: trust pid


def test_newer_format_refused_and_bad_path(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    ActivityLog(db).close()
    with sqlite3.connect(db) as con:
        con.execute("PRAGMA user_version=99")
    with pytest.raises(FatalError, match="format 99"):
        ActivityLog(db)
    (tmp_path / "file").write_text("")
    with pytest.raises(FatalError, match="cannot open activity log"):
        ActivityLog(tmp_path / "file" / "a.db")


def test_delete_old_sessions(tmp_path: Path) -> None:
    with ActivityLog(tmp_path / "a.db") as log:
        done = log.start_session("s", "h")
        log.record_file(done, "/x", {"class": "failed"})
        log.finish_session(
            done, status="completed", exit_code=0, snapshot_id=None, bytes_read=0, bytes_added=0, counts={}
        )
        running = log.start_session("s", "h")
        assert log.delete_sessions_before(datetime.now(UTC) + timedelta(seconds=5)) == 1
        assert [s.id for s in log.sessions()] == [running]
        assert log.files(done) == []  # cascaded
