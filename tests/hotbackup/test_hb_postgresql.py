"""PostgreSQL sets against a real server: dumps streamed into the snapshot under a writer and
pgbench, restored with `restore --database` and with restic + pg_restore, bad inputs, suspect."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
from hb_common import backup, json_lines, restic, server_keys, write_config, xdg

from dbservers import DbServer, pg_env, psql
from treeutil import sv

BATCH_SCRIPT = """\\set x 1
BEGIN;
SELECT nextval('batch_seq') AS b \\gset
INSERT INTO batches SELECT :b, g FROM generate_series(1, 25) g;
INSERT INTO batches SELECT :b, g FROM generate_series(26, 50) g;
COMMIT;
"""


def fresh_db(server: DbServer, tmp: Path, name: str) -> None:
    psql(server, tmp, f"DROP DATABASE IF EXISTS {name}")
    psql(server, tmp, f"CREATE DATABASE {name}")


def check_consistent(server: DbServer, tmp: Path, db: str) -> int:
    """Every batch complete and pgbench's balances agree: a committed state. Returns the rows."""
    rows = int(psql(server, tmp, "SELECT count(*) FROM batches", db))
    torn = psql(
        server, tmp, "SELECT count(*) FROM (SELECT b FROM batches GROUP BY b HAVING count(*) <> 50) t", db
    )
    assert rows % 50 == 0 and torn == "0", (rows, torn)
    sums = psql(
        server,
        tmp,
        "SELECT (SELECT sum(abalance) FROM pgbench_accounts), (SELECT sum(bbalance) FROM pgbench_branches), "
        "(SELECT sum(tbalance) FROM pgbench_tellers), (SELECT coalesce(sum(delta), 0) FROM pgbench_history)",
        db,
    )
    assert len(set(sums.split("|"))) == 1, sums
    return rows


@pytest.fixture
def busy_app(pg_server: DbServer, tmp_path: Path):  # type: ignore[no-untyped-def]
    """Database `app` with pgbench's tables and a `batches` table, written to by pgbench
    (tpcb-like plus 50-row batches in two statements per transaction) while the test runs."""
    fresh_db(pg_server, tmp_path, "app")
    e = pg_env(pg_server, tmp_path)
    subprocess.run(
        ["pgbench", "-i", "-q", "-s", "2", "app"], env=e, capture_output=True, check=True, timeout=300
    )
    psql(pg_server, tmp_path, "CREATE TABLE batches (b bigint, i int); CREATE SEQUENCE batch_seq", "app")
    script = tmp_path / "batch.sql"
    script.write_text(BATCH_SCRIPT)
    bench = subprocess.Popen(
        ["pgbench", "-n", "-c", "2", "-T", "600", "-b", "tpcb-like", "-f", str(script), "app"],
        env=e,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while int(psql(pg_server, tmp_path, "SELECT count(*) FROM batches", "app")) < 500:
            assert time.monotonic() < deadline and bench.poll() is None, "pgbench is not writing"
            time.sleep(0.2)
        yield bench
    finally:
        bench.terminate()
        bench.wait(timeout=30)


def test_dump_under_writers_restores_a_committed_state(
    pg_server: DbServer, busy_app: object, tmp_path: Path
) -> None:
    cfg = write_config(
        tmp_path, f'[sets.pg]\ntype = "postgresql"\n{server_keys(pg_server)}databases = ["app"]\n'
    )
    before = int(psql(pg_server, tmp_path, "SELECT count(*) FROM batches", "app"))
    done = backup(tmp_path, cfg, "--set", "pg", "--json")
    after = int(psql(pg_server, tmp_path, "SELECT count(*) FROM batches", "app"))
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json_lines(done.stdout)[-1]
    assert summary["files_ok"] == 2 and summary["files_failed"] == 0  # app.dump and globals.sql

    # restore --database into a fresh database, streamed through pg_restore
    psql(pg_server, tmp_path, "DROP DATABASE IF EXISTS app_restored")
    r = sv(
        "restore",
        "latest",
        "--database",
        "app",
        "--to-database",
        "app_restored",
        "--set",
        "pg",
        "--config",
        str(cfg),
        repo=tmp_path / "repo",
        check=False,
        env_extra=xdg(tmp_path),
    )
    assert r.returncode == 0, r.stderr
    restored = check_consistent(pg_server, tmp_path, "app_restored")
    assert before <= restored <= after

    # restic restore gives the same dump as a plain file, and pg_restore loads it
    target = tmp_path / "restic-restore"
    out = restic(tmp_path, "restore", "latest", "--target", str(target))
    assert out.returncode == 0, out.stderr
    label = f"{pg_server.host}-{pg_server.port}"
    dump_dir = target / ".shadowvault" / "postgresql" / label
    assert sorted(p.name for p in dump_dir.iterdir()) == ["app.dump", "globals.sql"]
    assert "CREATE ROLE postgres" in (dump_dir / "globals.sql").read_text()
    fresh_db(pg_server, tmp_path, "app_from_restic")
    e = pg_env(pg_server, tmp_path)
    load = subprocess.run(
        ["pg_restore", "--exit-on-error", "-d", "app_from_restic", str(dump_dir / "app.dump")],
        env=e,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert load.returncode == 0, load.stderr
    assert check_consistent(pg_server, tmp_path, "app_from_restic") == restored
    assert restic(tmp_path, "check", "--read-data").returncode == 0


def test_bad_inputs_fail_one_database_each_and_the_rest_is_saved(pg_server: DbServer, tmp_path: Path) -> None:
    fresh_db(pg_server, tmp_path, "good")
    psql(pg_server, tmp_path, "CREATE TABLE t AS SELECT 1 AS x", "good")
    wrong = tmp_path / "wrong-password"
    wrong.write_text("not-the-password\n")
    pg = '[sets.{}]\ntype = "postgresql"\n{}databases = {}\n\n'
    body = (
        pg.format("pg", server_keys(pg_server), '["good", "missing_db"]')
        + pg.format("badpw", server_keys(pg_server, password_file=str(wrong)), '["good"]')
        + pg.format("down", 'host = "127.0.0.1"\nport = 1\nuser = "postgres"\n', '["good"]')
    )
    cfg = write_config(tmp_path, body)
    done = backup(tmp_path, cfg, "--all-sets")
    assert done.returncode == 3, done.stderr
    failed = [ln for ln in done.stderr.splitlines() if ln.startswith("failed")]
    assert len(failed) == 3, done.stderr
    missing, badpw, down = failed
    assert "set pg, database missing_db:" in missing and 'database "missing_db" does not exist' in missing
    assert "set badpw, database good:" in badpw and "password authentication failed" in badpw
    assert "set down, database good:" in down and "port 1 failed" in down
    assert "Traceback" not in done.stderr
    # the set with one bad database still holds the good one
    ls = restic(tmp_path, "ls", "--json", "latest", "--tag", "pg")
    names = [line for line in ls.stdout.splitlines() if '"name":"good.dump"' in line]
    assert names, ls.stdout


def test_unreadable_archive_is_suspect(pg_server: DbServer, tmp_path: Path) -> None:
    """A plain-SQL stream where a custom archive was promised fails pg_restore --list: suspect."""
    fresh_db(pg_server, tmp_path, "plain")
    cfg = write_config(
        tmp_path,
        f'[sets.pg]\ntype = "postgresql"\n{server_keys(pg_server)}'
        'databases = ["plain"]\noptions = ["--format=plain"]\n',
    )
    done = backup(tmp_path, cfg, "--set", "pg")
    assert done.returncode == 4, done.stderr
    assert "suspect" in done.stderr and "pg_restore --list cannot read the stored dump" in done.stderr
