"""reflink provider: clones under a shared lock, companion files from the main file's moment (real XFS)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from loopfs import loop_fs
from shadowvault.snapshots.filelock import companions_of, main_of
from shadowvault.snapshots.model import Handle, Volume
from shadowvault.snapshots.reflink import ReflinkProvider

pytestmark = [pytest.mark.root, pytest.mark.loopdev]

# Holds a lock of the given family on argv[1], says so, rewrites the file after argv[3] seconds
# and only then lets go: a clone that waited for the lock sees the new content.
HOLDER = textwrap.dedent(
    """
    import fcntl, os, sys, time
    path, family, hold = sys.argv[1], sys.argv[2], float(sys.argv[3])
    fd = os.open(path, os.O_RDWR)
    if family == "posix":
        fcntl.lockf(fd, fcntl.LOCK_EX)
    else:
        fcntl.flock(fd, fcntl.LOCK_EX)
    print("locked", flush=True)
    time.sleep(hold)
    os.pwrite(fd, b"after the lock", 0)
    os.ftruncate(fd, len(b"after the lock"))
    """
)

# Tries a POSIX write lock on argv[1] for up to two seconds: exit 0 once it had it.
TRY_WRITE_LOCK = textwrap.dedent(
    """
    import fcntl, os, sys, time
    fd = os.open(sys.argv[1], os.O_RDWR)
    end = time.monotonic() + 2
    while True:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            sys.exit(0)
        except OSError:
            if time.monotonic() > end:
                sys.exit(1)
            time.sleep(0.01)
    """
)

# A SQLite writer in rollback (DELETE) mode committing multi-page transactions in a loop.
SQLITE_WRITER = textwrap.dedent(
    """
    import sqlite3, sys
    con = sqlite3.connect(sys.argv[1], isolation_level=None)
    con.execute("PRAGMA journal_mode=DELETE")
    con.execute("CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, body BLOB, k TEXT)")
    con.execute("CREATE INDEX IF NOT EXISTS t_k ON t(k)")
    seq = 0
    while True:
        con.execute("BEGIN IMMEDIATE")
        for _ in range(6):
            con.execute("INSERT INTO t(body, k) VALUES (randomblob(1500), hex(randomblob(12)))")
        con.execute("DELETE FROM t WHERE id <= (SELECT max(id) FROM t) - 600")
        con.execute("COMMIT")
        seq += 1
        if seq == 10:
            print("running", flush=True)
    """
)


@pytest.fixture(scope="module")
def xfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One reflink-capable XFS for the module (each test works in its own directory)."""
    with loop_fs(tmp_path_factory.mktemp("xfs"), "xfs", mkfs_args=["-m", "reflink=1"]) as mnt:
        yield mnt


@pytest.fixture
def area(xfs: Path, request: pytest.FixtureRequest) -> Path:
    """A fresh directory on the XFS for one test."""
    path = xfs / str(request.node.name).replace("[", "-").replace("]", "")
    path.mkdir()
    return path


@pytest.fixture
def made(xfs: Path) -> Iterator[tuple[ReflinkProvider, Handle]]:
    """A provider (default lock_wait) and its work dir; the work dir is removed afterwards."""
    provider = ReflinkProvider()
    volume = provider.supports(xfs)
    assert isinstance(volume, Volume), volume
    handle = provider.create(volume, "shadowvault", "1-0badf00d")
    try:
        yield provider, handle
    finally:
        provider.delete(handle)
        assert handle.path is not None and not handle.path.exists()


@contextmanager
def running(script: str, *args: str, ready: str) -> Iterator[subprocess.Popen[str]]:
    """A helper process that has printed ``ready``; killed (if still running) when the block ends."""
    with subprocess.Popen([sys.executable, "-c", script, *args], stdout=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout is not None and proc.stdout.readline().strip() == ready
            yield proc
        finally:
            proc.kill()
            proc.wait()


def test_companion_names_are_the_main_name_plus_a_suffix() -> None:
    db = Path("/d/app.db")
    assert companions_of(db) == (Path("/d/app.db-journal"), Path("/d/app.db-wal"), Path("/d/app.db-shm"))
    assert all(main_of(c) == db for c in companions_of(db))
    assert main_of(db) is None
    assert main_of(Path("/d/-wal")) is None  # a bare suffix has no main file


@pytest.mark.parametrize("family", ["posix", "flock"])
def test_a_lock_holder_delays_the_clone_until_it_lets_go(
    family: str, area: Path, made: tuple[ReflinkProvider, Handle]
) -> None:
    provider, handle = made
    target = area / "locked.db"
    target.write_bytes(b"before the lock, longer")
    with running(HOLDER, str(target), family, "0.6", ready="locked"):
        began = time.monotonic()
        with provider.open_file(handle, target) as clone:
            waited = time.monotonic() - began
            content = clone.read_bytes()
    # The holder rewrote the file just before releasing: only a clone made after that sees it.
    assert content == b"after the lock"
    assert 0.3 < waited < 5, waited


def test_a_lock_held_past_lock_wait_is_cloned_anyway_and_not_kept_locked(area: Path, xfs: Path) -> None:
    provider = ReflinkProvider(lock_wait=0.3)
    volume = provider.supports(xfs)
    assert isinstance(volume, Volume), volume
    handle = provider.create(volume, "shadowvault", "1-0badf00d")
    target = area / "long.db"
    target.write_bytes(b"held for long")
    try:
        with running(HOLDER, str(target), "posix", "1.2", ready="locked") as holder:
            began = time.monotonic()
            with provider.open_file(handle, target) as clone:
                first = time.monotonic() - began
                assert clone.read_bytes() == b"held for long"
            # The first wait is still pending in its thread: no second wait on the same file.
            began = time.monotonic()
            with provider.open_file(handle, target) as clone:
                second = time.monotonic() - began
                assert clone.read_bytes() == b"held for long"
            assert holder.wait(timeout=5) == 0
    finally:
        provider.delete(handle)
    assert 0.25 < first < 1.0, first
    assert second < 0.25, second
    # The abandoned wait got the lock once the holder left, and let go of it at once.
    check = subprocess.run([sys.executable, "-c", TRY_WRITE_LOCK, str(target)], check=False)
    assert check.returncode == 0


def test_companions_are_cloned_with_the_main_file(area: Path, made: tuple[ReflinkProvider, Handle]) -> None:
    provider, handle = made
    assert handle.path is not None
    db = area / "app.db"
    db.write_text("db state 1")
    (area / "app.db-journal").write_text("journal of state 1")
    (area / "app.db-wal").write_text("wal of state 1")
    with provider.open_file(handle, db) as clone:
        assert clone.read_text() == "db state 1"
        # Live companions change after the main file's moment ...
        (area / "app.db-journal").write_text("journal of a later state")
        (area / "app.db-wal").unlink()
    assert len(list(handle.path.iterdir())) == 2  # the two kept companion clones
    # ... but the engine gets them as they were at that moment, once.
    with provider.open_file(handle, area / "app.db-journal") as clone:
        assert clone.read_text() == "journal of state 1"
    with provider.open_file(handle, area / "app.db-wal") as clone:
        assert clone.read_text() == "wal of state 1"
    assert list(handle.path.iterdir()) == []
    # Asked for again, a companion is cloned afresh (under the main file's lock).
    with provider.open_file(handle, area / "app.db-journal") as clone:
        assert clone.read_text() == "journal of a later state"


def test_a_newer_clone_of_the_main_file_drops_companions_kept_from_before(
    area: Path, made: tuple[ReflinkProvider, Handle]
) -> None:
    provider, handle = made
    assert handle.path is not None
    db = area / "app.db"
    journal = area / "app.db-journal"
    db.write_text("state 1")
    journal.write_text("journal of state 1")
    with provider.open_file(handle, db):
        pass
    journal.unlink()
    db.write_text("state 2")
    # Read again (a retry): the journal kept from state 1 must not pair with state 2.
    with provider.open_file(handle, db) as clone:
        assert clone.read_text() == "state 2"
    assert list(handle.path.iterdir()) == []
    with provider.open_file(handle, journal) as clone:
        assert not clone.exists()


def test_a_companion_absent_at_its_main_files_moment_is_not_read(
    area: Path, made: tuple[ReflinkProvider, Handle]
) -> None:
    provider, handle = made
    db = area / "app.db"
    db.write_text("committed")
    with provider.open_file(handle, db):
        pass
    journal = area / "app.db-journal"
    journal.write_text("a journal that appeared later")
    # No clone was kept for it, so it is cloned now under the db's lock ...
    with provider.open_file(handle, journal) as clone:
        assert clone.read_text() == "a journal that appeared later"
    journal.unlink()
    # ... and where it does not exist then, the path yielded has nothing either (never the live file).
    with provider.open_file(handle, journal) as clone:
        assert not clone.exists() and clone != journal


def test_companion_clones_never_asked_for_go_with_the_work_dir(
    area: Path, made: tuple[ReflinkProvider, Handle]
) -> None:
    provider, handle = made
    assert handle.path is not None
    db = area / "x.db"
    db.write_text("db")
    (area / "x.db-shm").write_text("shm")
    with provider.open_file(handle, db):
        pass
    assert [p.name.startswith("clone-") for p in handle.path.iterdir()] == [True]
    provider.delete(handle)
    assert not handle.path.exists()
    # A later session with the same provider does not hand out the deleted clone.
    assert handle.volume is not None
    handle = provider.create(handle.volume, "shadowvault", "1-0badf00d")
    with provider.open_file(handle, area / "x.db-shm") as clone:
        assert clone.read_text() == "shm"


def test_sqlite_db_and_journal_clones_under_a_writer_always_open_intact(
    area: Path, made: tuple[ReflinkProvider, Handle], tmp_path: Path
) -> None:
    provider, handle = made
    db = area / "app.db"
    journals = 0
    with running(SQLITE_WRITER, str(db), ready="running"):
        for n in range(12):
            copy = tmp_path / f"copy-{n}"
            copy.mkdir()
            with provider.open_file(handle, db) as clone:
                (copy / "app.db").write_bytes(clone.read_bytes())
            with provider.open_file(handle, area / "app.db-journal") as clone:
                if clone.exists():
                    journals += 1
                    (copy / "app.db-journal").write_bytes(clone.read_bytes())
            con = sqlite3.connect(copy / "app.db")
            try:
                assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",), n
                assert con.execute("SELECT count(*) FROM t").fetchone()[0] > 0
            finally:
                con.close()
    # Under our read lock a rollback-mode writer is never mid-transaction: no journal exists.
    assert journals == 0
