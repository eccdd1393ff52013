"""Real scenarios: real writer processes against real leases, locks and stat checks.

Each test drives files the way the engine will: ``OpenFiles.attempt`` → read →
``result()`` → ``decide`` → (``RetryQueue`` + sleep) → next attempt.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pyfastcdc import FastCDC
from tests.conftest import require_root
from tests.openfiles.of_helpers import APPEND_LOOP, HOLD_OPEN_FOR_WRITING, Child, slow_read

from shadowvault.openfiles import (
    Attempt,
    BreakState,
    Classification,
    FileAttempt,
    FileOutcome,
    LeaseState,
    OpenFiles,
    Reason,
    RetryPolicy,
    RetryQueue,
    Strategy,
    WriterInfo,
    decide,
)

Reader = Callable[[FileAttempt], bytes]


def read_all(att: FileAttempt) -> bytes:
    return att.read()


def run_file(
    of: OpenFiles, path: Path, strategy: Strategy, policy: RetryPolicy, reader: Reader = read_all
) -> tuple[FileOutcome, list[Attempt], bytes]:
    """One file through attempts and retries, waiting on a RetryQueue like the engine's loop."""
    queue: RetryQueue[int] = RetryQueue()
    attempts: list[Attempt] = []
    number = 1
    while True:
        data = b""
        with of.attempt(path, strategy, number) as att:
            if att.refused is None:
                data = reader(att)
        attempts.append(att.result())
        step = decide(attempts, strategy, policy)
        if isinstance(step, FileOutcome):
            return step, attempts, data
        queue.push(step.number, time.monotonic() + step.after)
        due: list[int] = []
        while not due:
            next_due = queue.next_due()
            assert next_due is not None
            time.sleep(max(0.0, next_due - time.monotonic()))
            due = queue.pop_due(time.monotonic())
        number = due[0]


@pytest.fixture
def of() -> Iterator[OpenFiles]:
    warnings: list[str] = []
    with OpenFiles(on_warning=warnings.append) as session:
        yield session
    assert warnings == [], "root owns every test file: leases must work"


@pytest.fixture
def data(tmp_path: Path) -> Path:
    p = tmp_path / "data.bin"
    p.write_bytes(os.urandom(64 * 1024))
    return p


def test_quiet_file_is_ok_under_every_strategy_and_chunks_with_fastcdc(of: OpenFiles, data: Path) -> None:
    for strategy in Strategy:
        out, attempts, got = run_file(of, data, strategy, RetryPolicy())
        assert out.classification is Classification.OK, strategy
        assert got == data.read_bytes()
        assert attempts[0].bytes_read == len(got)
    with of.attempt(data, Strategy.DENY_WRITE) as att:
        assert att.stat_before is not None and att.stat_before.st_size == 64 * 1024
        chunks = list(FastCDC(avg_size=8192).cut_stream(att))
    assert sum(c.length for c in chunks) == 64 * 1024
    assert att.result().lease is LeaseState.GRANTED


def test_1_append_during_read_is_suspect(of: OpenFiles, data: Path) -> None:
    original = data.read_bytes()
    with Child(APPEND_LOOP, str(data), comm="svappender") as w:
        w.wait_ready()
        for strategy in (Strategy.ALLOW_WRITE, Strategy.TRY_DENY_WRITE):
            out, _, got = run_file(
                of, data, strategy, RetryPolicy(), reader=lambda a: slow_read(a, 4096, 0.01)
            )
            assert out.classification is Classification.SUSPECT, strategy
            assert out.reason is Reason.CHANGED_DURING_READ
            assert out.message.startswith("changed during the read (size, mtime")
            assert out.writers == (WriterInfo(w.pid, "svappender"),)
            assert got.startswith(original)
            assert len(got) < data.stat().st_size  # stopped at the size seen at the start


def test_2_holder_without_writes(of: OpenFiles, data: Path) -> None:
    with Child(HOLD_OPEN_FOR_WRITING, str(data), comm="svholder") as w:
        w.wait_ready()
        holder = WriterInfo(w.pid, "svholder")

        out, attempts, got = run_file(of, data, Strategy.DENY_WRITE, RetryPolicy(times=2, interval=0))
        assert out.classification is Classification.FAILED
        assert out.reason is Reason.OPEN_FOR_WRITING
        assert out.attempts == 3 == len(attempts)
        assert out.writers == (holder,)
        assert out.message == f"open for writing by svholder (pid {w.pid})"
        assert got == b"" and all(a.bytes_read == 0 for a in attempts)

        for strategy in (Strategy.TRY_DENY_WRITE, Strategy.ALLOW_WRITE):
            out, _, got = run_file(of, data, strategy, RetryPolicy(times=2))
            assert out.classification is Classification.SUSPECT, strategy
            assert out.reason is Reason.OPEN_FOR_WRITING
            assert out.writers == (holder,)
            assert out.attempts == 1
            assert got == data.read_bytes()


def test_3_writer_that_closes_is_waited_for(of: OpenFiles, data: Path) -> None:
    with Child(HOLD_OPEN_FOR_WRITING, str(data), "2", comm="svholder") as w:
        w.wait_ready()
        start = time.monotonic()
        out, attempts, got = run_file(of, data, Strategy.DENY_WRITE, RetryPolicy(times=5, interval=1))
        took = time.monotonic() - start
    assert out.classification is Classification.OK
    assert out.reason is Reason.READ_UNDER_LEASE
    assert 2 <= out.attempts <= 4
    assert attempts[0].lease is LeaseState.REFUSED and attempts[-1].lease is LeaseState.GRANTED
    assert out.writers == (WriterInfo(w.pid, "svholder"),)  # who made us wait is still reported
    assert took >= 1.0
    assert got == data.read_bytes()


def test_4_writer_opening_during_deny_write_read_waits_for_us(of: OpenFiles, data: Path) -> None:
    before = data.read_bytes()
    code = """
print("ready", flush=True)
fd = os.open(sys.argv[2], os.O_WRONLY)
print(repr(time.time()), flush=True)
os.write(fd, b"NEW")
os.close(fd)
print("written", flush=True)
time.sleep(60)
"""
    with of.attempt(data, Strategy.DENY_WRITE) as att:
        assert att.refused is None
        buf = bytearray(4096)
        got = bytearray(buf[: att.readinto(buf)])
        with Child(code, str(data)) as w:
            w.wait_ready()
            time.sleep(0.5)  # the writer is now inside open(), held by our lease
            last = time.time()
            while n := att.readinto(buf):
                got += buf[:n]
                time.sleep(0.02)
                last = time.time()
            opened_at = float(w.line())
            assert w.line() == "written"
    result = att.result()
    assert bytes(got) == before
    assert opened_at >= last, "the writer got in before our read ended"
    assert result.lease_break is BreakState.OUTLASTED
    assert of.watch.times, "the lease break signal was seen and survived"
    out = decide([result], Strategy.DENY_WRITE, RetryPolicy())
    assert isinstance(out, FileOutcome) and out.classification is Classification.OK
    assert data.read_bytes()[:3] == b"NEW"


# Deletes and inserts variable-size rows with an index, so pages split, merge and move to
# the freelist: a copy taken across a commit fails integrity_check (the control below).
SQLITE_WRITER = """
import random, sqlite3
con = sqlite3.connect(sys.argv[2], timeout=30, isolation_level=None)
con.execute("PRAGMA journal_mode=DELETE")
con.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, k INTEGER, v BLOB)")
con.execute("CREATE INDEX t_k ON t(k)")

def row():
    return random.getrandbits(60), random.randbytes(random.randrange(50, 900))

con.execute("BEGIN")
con.executemany("INSERT INTO t(k, v) VALUES (?, ?)", [row() for _ in range(3000)])
con.execute("COMMIT")
print("ready", flush=True)
while True:
    con.execute("BEGIN IMMEDIATE")
    con.execute("DELETE FROM t WHERE id IN (SELECT id FROM t ORDER BY random() LIMIT 150)")
    con.executemany("INSERT INTO t(k, v) VALUES (?, ?)", [row() for _ in range(150)])
    con.execute("COMMIT")
    time.sleep(0.03)  # an application's idle moment; our lock can only be had between transactions
"""


def sqlite_copy_ok(copy: Path) -> bool:
    con = sqlite3.connect(copy)
    try:
        ok = con.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        return ok and con.execute("SELECT count(*) FROM t").fetchone() == (3000,)
    except sqlite3.DatabaseError:
        return False
    finally:
        con.close()


def test_5_prevent_write_copies_a_busy_sqlite_database_consistently(of: OpenFiles, tmp_path: Path) -> None:
    db = tmp_path / "live.db"
    copy = tmp_path / "copy.db"
    slow: Reader = lambda a: slow_read(a, 64 * 1024, 0.003)  # noqa: E731
    with Child(SQLITE_WRITER, str(db), comm="svsqlite") as w:
        w.wait_ready(timeout=30)
        for _ in range(5):
            out, attempts, got = run_file(
                of, db, Strategy.PREVENT_WRITE, RetryPolicy(times=10, interval=0.02), reader=slow
            )
            assert out.classification is Classification.OK, out
            assert out.reason is Reason.READ_UNDER_LOCK
            assert out.writers == (WriterInfo(w.pid, "svsqlite"),)
            assert attempts[-1].lease is LeaseState.REFUSED
            copy.write_bytes(got)
            assert sqlite_copy_ok(copy)
        # Control: the same reads without the lock give torn copies, so the lock is what helped.
        torn = 0
        for _ in range(5):
            out, _, got = run_file(of, db, Strategy.ALLOW_WRITE, RetryPolicy(), reader=slow)
            assert out.classification is Classification.SUSPECT
            copy.write_bytes(got)
            torn += not sqlite_copy_ok(copy)
        assert torn >= 1
        assert w.proc.poll() is None, "the writer survived our locks"


def test_6_lease_revoked_by_the_kernel_makes_the_read_suspect(of: OpenFiles, data: Path) -> None:
    require_root()
    knob = Path("/proc/sys/fs/lease-break-time")
    old = knob.read_text()
    code = "fd = os.open(sys.argv[2], os.O_WRONLY)\nprint('ready', flush=True)\ntime.sleep(60)\n"
    try:
        knob.write_text("1")
        for strategy, cls in (
            (Strategy.TRY_DENY_WRITE, Classification.SUSPECT),
            (Strategy.DENY_WRITE, Classification.FAILED),
        ):
            with of.attempt(data, strategy) as att:
                head = att.read(1000)
                with Child(code, str(data)) as w:
                    w.wait_ready(timeout=10)  # only after the kernel took our lease back
                    rest = att.read()
            result = att.result()
            assert head + rest == data.read_bytes()
            assert result.lease_break is BreakState.REVOKED
            assert result.changed == ()
            out = decide([result], strategy, RetryPolicy())
            assert isinstance(out, FileOutcome)
            assert (out.classification, out.reason) == (cls, Reason.LEASE_BROKEN)
    finally:
        knob.write_text(old)


def test_files_that_cannot_be_read_fail_without_retries(of: OpenFiles, tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    link = tmp_path / "link"
    link.symlink_to(tmp_path)
    for path, reason in (
        (tmp_path / "gone", Reason.VANISHED),
        (fifo, Reason.NOT_REGULAR),  # must not hang waiting for a FIFO writer
        (link, Reason.NOT_REGULAR),
        (tmp_path, Reason.NOT_REGULAR),
    ):
        out, _, _ = run_file(of, path, Strategy.DENY_WRITE, RetryPolicy(times=10, interval=5))
        assert (out.classification, out.reason, out.attempts) == (Classification.FAILED, reason, 1), path


def test_replaced_or_removed_during_read_is_detected(of: OpenFiles, data: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.write_bytes(b"x")
    with of.attempt(data, Strategy.TRY_DENY_WRITE) as att:
        att.read(10)
        os.rename(other, data)
    assert "inode" in att.result().changed  # (ctime too: the old inode lost its link)
    with of.attempt(data, Strategy.ALLOW_WRITE) as att:
        att.read(1)
        data.unlink()
    assert "removed" in att.result().changed
    assert att.read() == b"" and att.readinto(bytearray(10)) == 0  # finished: nothing more to read


def test_guards_are_released_the_moment_the_read_ends(of: OpenFiles, data: Path) -> None:
    probe = "fd = os.open(sys.argv[2], os.O_WRONLY | os.O_NONBLOCK)\nprint('opened', flush=True)\n"
    with of.attempt(data, Strategy.DENY_WRITE) as att:
        with Child(probe, str(data)) as w:  # O_NONBLOCK: a held lease gives EWOULDBLOCK at once
            assert w.line() == ""  # died on the lease
        assert att.read() == data.read_bytes()  # reaches EOF: lease released here
        with Child(probe, str(data)) as w:
            assert w.line() == "opened"
