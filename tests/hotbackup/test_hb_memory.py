"""A dump much larger than the memory bound is streamed: peak RSS of the backup process stays
under 150 MiB and no temporary file of the dump's size appears (bench/hotbackup.py measures a
1 GB database against `pg_dump -Fc > file` + `restic backup file`)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
from pathlib import Path

from hb_common import server_keys, write_config, xdg

from dbservers import DbServer, psql
from treeutil import env

DUMP_MIB = 320  # > 2x the bound, so holding the dump (or a chunk list of copies) would exceed it
RSS_BOUND_MIB = 150


def _largest_file(root: Path) -> int:
    biggest = 0
    for dirpath, _, files in os.walk(root):
        for name in files:
            with contextlib.suppress(OSError):  # temp files come and go while we look
                biggest = max(biggest, os.lstat(os.path.join(dirpath, name)).st_size)
    return biggest


def test_large_dump_streams_in_bounded_memory_without_a_temp_file(
    pg_server: DbServer, tmp_path: Path
) -> None:
    rows = DUMP_MIB * 1024 * 1024 // 330  # one row of the dump is ~330 bytes
    if psql(pg_server, tmp_path, "SELECT count(*) FROM pg_database WHERE datname = 'rssbig'") == "0":
        psql(pg_server, tmp_path, "CREATE DATABASE rssbig")
    psql(
        pg_server,
        tmp_path,
        "CREATE TABLE IF NOT EXISTS big AS SELECT g, repeat(md5(g::text), 10) AS v "
        f"FROM generate_series(1, {rows}) g",
        "rssbig",
    )
    keys = server_keys(pg_server)
    # --compress=0: the stream is the full size (pg_dump's own compression would shrink it)
    cfg = write_config(
        tmp_path,
        f'[sets.big]\ntype = "postgresql"\n{keys}databases = ["rssbig"]\noptions = ["--compress=0"]\n',
    )
    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir()
    largest = [0]
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(0.05):
            largest[0] = max(largest[0], _largest_file(tmpdir))

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    with (tmp_path / "out").open("w") as out, (tmp_path / "err").open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "shadowvault", "backup", "--config", str(cfg), "--set", "big", "--json"],
            stdout=out,
            stderr=err,
            env=env(tmp_path / "repo", TMPDIR=str(tmpdir), **xdg(tmp_path)),
        )
        # wait4 gives the rusage of exactly this child (and what it reaped: pg_dump, pg_restore)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    stop.set()
    watcher.join()
    assert proc.returncode == 0, (tmp_path / "err").read_text()
    summary = [ln for ln in (tmp_path / "out").read_text().splitlines() if '"summary"' in ln][-1]
    bytes_read = int(summary.split('"bytes_read": ')[1].split(",")[0])
    assert bytes_read > DUMP_MIB * 1024 * 1024 * 0.9, summary
    peak_mib = usage.ru_maxrss / 1024
    assert peak_mib < RSS_BOUND_MIB, f"peak RSS {peak_mib:.0f} MiB for a {bytes_read >> 20} MiB dump"
    assert largest[0] < 1024 * 1024, f"a {largest[0]} byte file appeared in TMPDIR"
