"""A dump much larger than the memory bound is streamed: peak RSS of the backup process stays
under 150 MiB and no temporary file of the dump's size appears (bench/hotbackup.py measures a
1 GB database against `pg_dump -Fc > file` + `restic backup file`); a dump cut short is failed
and its partial data is not referenced."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hb_common import server_keys, write_config, xdg

from dbservers import DbServer, psql
from treeutil import env

DUMP_MIB = 320  # > 2x the bound, so holding the dump (or a chunk list of copies) would exceed it
RSS_BOUND_MIB = 150


@pytest.fixture(scope="module")
def rssbig(pg_server: DbServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Database `rssbig` for this module's tests, dropped after them (other tests dump "all")."""
    yield
    psql(pg_server, tmp_path_factory.mktemp("drop"), "DROP DATABASE IF EXISTS rssbig")


def big_database_set(server: DbServer, tmp: Path) -> Path:
    """Database `rssbig` and a config whose set `big` dumps it; --compress=0 keeps the stream at
    its full size (pg_dump's own compression would shrink it)."""
    rows = DUMP_MIB * 1024 * 1024 // 330  # one row of the dump is ~330 bytes
    if psql(server, tmp, "SELECT count(*) FROM pg_database WHERE datname = 'rssbig'") == "0":
        psql(server, tmp, "CREATE DATABASE rssbig")
    psql(
        server,
        tmp,
        "CREATE TABLE IF NOT EXISTS big AS SELECT g, repeat(md5(g::text), 10) AS v "
        f"FROM generate_series(1, {rows}) g",
        "rssbig",
    )
    keys = server_keys(server)
    return write_config(
        tmp, f'[sets.big]\ntype = "postgresql"\n{keys}databases = ["rssbig"]\noptions = ["--compress=0"]\n'
    )


def _largest_file(root: Path) -> int:
    biggest = 0
    for dirpath, _, files in os.walk(root):
        for name in files:
            with contextlib.suppress(OSError):  # temp files come and go while we look
                biggest = max(biggest, os.lstat(os.path.join(dirpath, name)).st_size)
    return biggest


def _sample_hwm(pid: int, hwm: list[int], stop: threading.Event) -> None:
    """Keep the highest VmHWM (KiB) of process ``pid`` until it ends or ``stop`` is set."""
    while not stop.is_set():
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        hwm[0] = max(hwm[0], int(line.split()[1]))
        except OSError:
            return
        stop.wait(0.02)


def test_large_dump_streams_in_bounded_memory_without_a_temp_file(
    pg_server: DbServer, rssbig: None, tmp_path: Path
) -> None:
    cfg = big_database_set(pg_server, tmp_path)
    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir()
    largest = [0]
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(0.05):
            largest[0] = max(largest[0], _largest_file(tmpdir))

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    hwm = [0]
    with (tmp_path / "out").open("w") as out, (tmp_path / "err").open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "shadowvault", "backup", "--config", str(cfg), "--set", "big", "--json"],
            stdout=out,
            stderr=err,
            env=env(tmp_path / "repo", TMPDIR=str(tmpdir), **xdg(tmp_path)),
        )
        # The backup's own peak (VmHWM only grows): wait4's rusage would also count what the
        # process reaped (pg_dump, pg_restore), which are not the streaming this bound is about.
        sampler = threading.Thread(target=_sample_hwm, args=(proc.pid, hwm, stop), daemon=True)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    stop.set()
    watcher.join()
    sampler.join()
    assert proc.returncode == 0, (tmp_path / "err").read_text()
    summary = [ln for ln in (tmp_path / "out").read_text().splitlines() if '"summary"' in ln][-1]
    bytes_read = int(summary.split('"bytes_read": ')[1].split(",")[0])
    assert bytes_read > DUMP_MIB * 1024 * 1024 * 0.9, summary  # the stream really was that large
    peak_mib = hwm[0] / 1024
    assert 0 < peak_mib < RSS_BOUND_MIB, (
        f"peak RSS {peak_mib:.0f} MiB for a {bytes_read >> 20} MiB dump "
        f"(with reaped children: {usage.ru_maxrss / 1024:.0f} MiB)"
    )
    assert largest[0] < 1024 * 1024, f"a {largest[0]} byte file appeared in TMPDIR"


def _children_named(parent: int, program: str) -> list[int]:
    """Processes called ``program`` whose parent is ``parent``: only what our backup started."""
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                stat = Path(f"/proc/{pid}/stat").read_text()
                name = stat[stat.index("(") + 1 : stat.rindex(")")]
                ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
                if ppid == parent and name == program:
                    found.append(int(pid))
    return found


CUT_AFTER = 16 * 1024 * 1024  # bytes pg_dump has written when the test kills it (of DUMP_MIB)


def _bytes_written(pid: int) -> int:
    """Bytes process ``pid`` has written so far (its ``wchar``); a huge number once it is gone,
    so that a caller waiting for it stops waiting."""
    try:
        for line in Path(f"/proc/{pid}/io").read_text().splitlines():
            if line.startswith("wchar:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 1 << 62


def test_a_dump_cut_short_is_failed_and_not_referenced(
    pg_server: DbServer, rssbig: None, tmp_path: Path
) -> None:
    """pg_dump killed mid-stream: the dump is failed with the cause, the snapshot holds the rest
    (globals.sql), no tree references the partial data, and restic check --read-data accepts it."""
    cfg = big_database_set(pg_server, tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "shadowvault", "backup", "--config", str(cfg), "--set", "big"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env(tmp_path / "repo", **xdg(tmp_path)),
    )
    killed = False
    while proc.poll() is None and not killed:
        for pid in _children_named(proc.pid, "pg_dump"):
            # Let it stream a part of the dump first, measured in bytes written rather than
            # waited in time: a fixed pause once outlasted a fast dump, which then ended whole.
            while _bytes_written(pid) < CUT_AFTER and proc.poll() is None:
                threading.Event().wait(0.01)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)
                killed = True
            break
        threading.Event().wait(0.05)
    _, err = proc.communicate(timeout=300)
    assert killed, "pg_dump was never seen running"
    assert proc.returncode == 3, err
    line = next(ln for ln in err.splitlines() if ln.startswith("failed"))
    assert "set big, database rssbig: pg_dump failed (killed by signal 9)" in line
    ls = subprocess.run(
        ["restic", "ls", "latest"], capture_output=True, text=True, env=env(tmp_path / "repo")
    )
    assert "globals.sql" in ls.stdout and "rssbig.dump" not in ls.stdout
    check = subprocess.run(
        ["restic", "check", "--read-data"], capture_output=True, text=True, env=env(tmp_path / "repo")
    )
    assert check.returncode == 0, check.stderr
