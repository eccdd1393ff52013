"""Forked reader processes (engine.procread): the small files of a first backup are read, hashed,
compressed and encrypted by worker processes; anything not clean is read by the walking thread as
without them. Real backups, restic as the judge."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.openfiles.of_helpers import APPEND_LOOP, HOLD_OPEN_FOR_WRITING, Child

from shadowvault.engine import procread
from shadowvault.engine.procread import ReadProcesses
from shadowvault.openfiles import RetryPolicy, Strategy
from treeutil import PASSWORD, add_small_files, describe, make_full_tree, restic, sv


@pytest.fixture
def clean_counts(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """How many files the workers read clean, per session (recorded when the session closes them)."""
    counts: list[int] = []
    close = ReadProcesses.close

    def recording_close(self: ReadProcesses) -> None:
        counts.append(self.clean)
        close(self)

    monkeypatch.setattr(ReadProcesses, "close", recording_close)
    yield counts


def _tree(src: Path) -> None:
    make_full_tree(src, devices=False)
    add_small_files(src, 4)
    (src / "empty").write_bytes(b"")
    (src / "dup-a").write_bytes(b"same content")
    (src / "dup-b").write_bytes(b"same content")
    (src / "edge.bin").write_bytes(os.urandom(procread.SMALL_FILE))  # the largest a worker takes
    (src / "mid.bin").write_bytes(os.urandom(procread.SMALL_FILE + 1))  # read by the walking thread
    (src / "big.bin").write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    for name in ("idle.db", "busy.db"):
        con = sqlite3.connect(src / name)
        con.execute("CREATE TABLE t(v)")
        con.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(300)])
        con.commit()
        con.close()
    (src / "busy.db-wal").write_bytes(b"")  # a companion: busy.db is in use
    (src / "held.log").write_bytes(b"held open for writing\n")
    (src / "growing.log").write_bytes(b"")


def _done(sink: Any) -> list[tuple[str, dict[str, object]]]:
    from shadowvault.engine.events import FileDone

    return [(e.path, e.outcome.to_json()) for e in sink.events if isinstance(e, FileDone)]


def _verdicts(done: dict[str, dict[str, Any]]) -> dict[str, tuple[object, ...]]:
    return {
        p: (o["class"], o.get("reason"), sorted(str(w.get("command")) for w in o.get("writers", [])))
        for p, o in done.items()
    }


def test_workers_give_the_outcomes_and_snapshot_of_the_walking_thread(
    tmp_path: Path, clean_counts: list[int]
) -> None:
    """Through the Python API, with 0 and 2 reader processes: the same events and outcomes (a file
    held open for writing names its writer, a database in use is copied through SQLite, its
    companion not stored), the same tree for everything not being written, and restic restores the
    workers' snapshot identically; a file appended to all along ends the backup without harm."""
    import shadowvault as api
    from shadowvault.engine.events import ListSink

    src = tmp_path / "src"
    _tree(src)
    repo = api.init_repository(str(tmp_path / "repo"), PASSWORD)
    runs: list[list[tuple[str, dict[str, object]]]] = []
    snapshots: list[str] = []
    try:
        with (
            Child(HOLD_OPEN_FOR_WRITING, str(src / "held.log"), comm="svholder") as holder,
            Child(APPEND_LOOP, str(src / "growing.log"), comm="svappender") as appender,
        ):
            holder.wait_ready()
            appender.wait_ready()
            for n in (0, 2):
                sink = ListSink()
                opts = api.BackupOptions(sources=[str(src)], force=True, read_processes=n)
                result = api.backup(repo, opts, sink)
                assert result.snapshot_id is not None, result  # suspect files (the logs) do not stop it
                snapshots.append(result.snapshot_id)
                runs.append(_done(sink))
    finally:
        repo.close()
    # Every small plain file went through a worker in the second run (none in the first).
    assert clean_counts[0] > 600, clean_counts
    without, with_workers = ({p: o for p, o in run if not p.endswith("growing.log")} for run in runs)
    # Class, reason and writers per file; not the messages and attempt counts, which follow the
    # machine's timing (a lease break under load) in either run.
    assert _verdicts(without) == _verdicts(with_workers)
    assert [p for p, _ in runs[0]] == [p for p, _ in runs[1]]  # the walk's order of events
    held = with_workers[str(src / "held.log")]
    assert "svholder" in json.dumps(held["writers"]), held
    assert with_workers[str(src / "busy.db")]["reason"] == "sqlite-online-backup"
    assert str(src / "busy.db-wal") not in with_workers
    assert with_workers[str(src / "idle.db")]["class"] == "ok"
    assert str(src / "growing.log") in dict(runs[1])

    repo_path = tmp_path / "repo"
    check = restic("check", "--read-data", repo=repo_path, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    target = tmp_path / "restored"
    restic("restore", snapshots[1], "--target", str(target), repo=repo_path)
    restored = describe(target / src.relative_to("/"))
    expected = describe(src)
    for name in (b"growing.log", b"held.log", b"busy.db", b"busy.db-wal"):  # written, or a copy
        restored.pop(name, None)
        expected.pop(name, None)
    restored.pop(b"", None)
    expected.pop(b"", None)
    assert restored == expected


def test_a_first_backup_from_the_command_line_uses_workers_and_restores_identically(tmp_path: Path) -> None:
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("reader processes are used from two CPUs on")
    src, repo = tmp_path / "src", tmp_path / "repo"
    _tree(src)
    (src / "growing.log").unlink()
    (src / "held.log").unlink()
    sv("init", repo=repo)
    out = sv("backup", "--json", str(src), repo=repo).stdout
    summary = [json.loads(line) for line in out.splitlines() if '"summary"' in line][-1]
    assert summary["exit_code"] == 0 and summary["files_failed"] == 0, summary
    restic("check", "--read-data", repo=repo)
    restic("restore", "latest", "--target", str(tmp_path / "r"), repo=repo)
    restored, expected = describe(tmp_path / "r" / src.relative_to("/")), describe(src)
    for d in (restored, expected):
        for name in (b"busy.db", b"busy.db-wal", b""):  # a copy through SQLite; its companion
            d.pop(name, None)
    assert restored == expected


def test_long_paths_of_files_near_the_blob_limit_do_not_hang_the_backup(tmp_path: Path) -> None:
    """Requests of 64 paths of 3 KiB each filled the connection to a worker that was itself
    blocked sending back 64 blobs of 60 KiB: both waited for ever (the backup hung)."""
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("reader processes are used from two CPUs on")
    src, repo = tmp_path / "src", tmp_path / "repo"
    deep = src.joinpath(*[f"{i:02d}" * 100 for i in range(16)])
    assert len(os.fsencode(deep)) > 3200
    deep.mkdir(parents=True)
    for i in range(800):
        (deep / f"f{i:04d}").write_bytes(os.urandom(60_000))
    sv("init", repo=repo)
    out = sv("backup", "--json", str(src), repo=repo, timeout=120).stdout
    summary = [json.loads(line) for line in out.splitlines() if '"summary"' in line][-1]
    assert summary["exit_code"] == 0 and summary["files_ok"] == 800, summary
    restic("check", "--read-data", repo=repo)


def _two_workers(repo: Any, on_added: Callable[[int], None]) -> ReadProcesses:
    """Two reader processes for ``repo``'s blobs, the default strategy, no retries."""
    return ReadProcesses(
        2,
        strategy=Strategy.TRY_DENY_WRITE,
        retry=RetryPolicy(times=0, interval=0, on_change=False),
        encode=repo.encode_blob,
        save_encoded=repo.save_encoded_blob,
        on_added=on_added,
    )


def test_a_dead_worker_leaves_its_files_to_the_walking_thread(tmp_path: Path) -> None:
    """Requests of a worker that died come back as "read it here"; the other worker goes on."""
    import shadowvault as api

    files = []
    for i in range(200):
        p = tmp_path / f"f{i:03d}"
        p.write_bytes(os.urandom(100 + i))
        files.append(os.fsencode(p))
    repo = api.init_repository(str(tmp_path / "repo"), PASSWORD)
    added: list[int] = []
    try:
        pool = _two_workers(repo, added.append)
        try:
            assert all(w.alive for w in pool._workers)  # both answered their handshake
            first = pool._workers[0]
            os.kill(first.pid, signal.SIGKILL)
            handles = [pool.submit(f) for f in files]
            results = [h.result() if h is not None else None for h in handles]
        finally:
            pool.close()
        assert not first.alive
        read_here = [f for f, r in zip(files, results, strict=True) if r is None]
        clean = [r for r in results if r is not None]
        assert read_here and clean  # the dead worker's share, and the live one's
        assert all(r.attempt.number == 1 and r.blob_id is not None for r in clean)
        assert sum(added) == sum(r.size for r in clean)
        assert pool.clean == len(clean)
        repo.flush()
    finally:
        repo.close()
    check = restic("check", "--read-data", repo=tmp_path / "repo", check=False)
    assert check.returncode == 0, check.stdout + check.stderr


def test_workers_are_left_alone_when_nothing_comes_out_clean(tmp_path: Path) -> None:
    """Where no file comes out clean (no lease without being the owner, NFS, FUSE; here: every file
    starts with the SQLite header, which workers leave to the walking thread), every file would be
    read twice: after a few batches the walking thread stops handing files to the workers."""
    import shadowvault as api

    files = []
    for i in range(6 * procread._BATCH):
        p = tmp_path / f"f{i:03d}"
        p.write_bytes(b"SQLite format 3\x00" + os.urandom(200))
        files.append(os.fsencode(p))
    repo = api.init_repository(str(tmp_path / "repo"), PASSWORD)
    try:
        pool = _two_workers(repo, lambda _n: None)
        try:
            taken = []
            for f in files:
                h = pool.submit(f)
                if h is None:
                    break
                taken.append(h)
                assert h.result() is None  # a SQLite header: read by the walking thread
            assert pool.clean == 0
            assert procread._GIVE_UP_AFTER <= len(taken) < len(files), len(taken)
            assert pool.submit(files[-1]) is None
        finally:
            pool.close()
    finally:
        repo.close()


def _running(pid: int) -> bool:
    """Alive and not a zombie (an exited orphan waits for whoever reaps orphans here)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def test_workers_end_when_the_session_process_is_killed(tmp_path: Path) -> None:
    """kill -9 of the backup: its reader processes see their connection close and exit (no orphan
    keeps reading), and the repository still passes restic's check."""
    import subprocess
    import time

    from treeutil import env

    src, repo = tmp_path / "src", tmp_path / "repo"
    for d in range(40):
        sub = src / f"d{d:02d}"
        sub.mkdir(parents=True)
        for i in range(250):
            (sub / f"f{i:03d}").write_bytes(os.urandom(1000 + i))
    sv("init", repo=repo)
    proc = subprocess.Popen(
        [sys.executable, "-m", "shadowvault", "backup", str(src)],
        env=env(repo),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        children: list[int] = []
        deadline = time.monotonic() + 60
        while not children and time.monotonic() < deadline:
            time.sleep(0.05)
            try:
                listed = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text()
            except OSError:
                break
            children = [int(c) for c in listed.split()]
        assert children, "the backup started no reader process"
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        deadline = time.monotonic() + 10
        while any(_running(c) for c in children) and time.monotonic() < deadline:
            time.sleep(0.05)
        alive = [c for c in children if _running(c)]
        for c in alive:
            os.kill(c, signal.SIGKILL)
        assert not alive, f"reader processes outlived the killed backup: {alive}"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    # The killed process's lock stays (restic too needs `unlock` after its own crash).
    check = restic("check", "--no-lock", "--read-data", repo=repo, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
