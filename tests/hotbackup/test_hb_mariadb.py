"""MariaDB sets against a real server: InnoDB batches written during the dump, restore with
`restore --database` and with restic + mariadb, bad inputs, the completion trailer."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hb_common import backup, json_lines, restic, server_keys, write_config, xdg

from dbservers import DbServer, mariadb_sql, my_cnf
from treeutil import sv

BATCH = (
    "START TRANSACTION; INSERT INTO ids VALUES (NULL); SET @b = LAST_INSERT_ID(); "
    "INSERT INTO batches SELECT @b, seq FROM seq_1_to_25; "
    "INSERT INTO batches SELECT @b, seq FROM seq_26_to_50; "
    "COMMIT;"
)

TORN = "SELECT b FROM batches GROUP BY b HAVING count(*) <> 50"


def fresh_db(server: DbServer, tmp: Path, name: str) -> None:
    mariadb_sql(server, tmp, f"DROP DATABASE IF EXISTS {name}; CREATE DATABASE {name}")


def check_consistent(server: DbServer, tmp: Path, db: str) -> int:
    rows = int(mariadb_sql(server, tmp, "SELECT count(*) FROM batches", db))
    torn = mariadb_sql(
        server, tmp, "SELECT count(*) FROM (SELECT b FROM batches GROUP BY b HAVING count(*) <> 50) t", db
    )
    assert rows % 50 == 0 and torn == "0", (rows, torn)
    return rows


@pytest.fixture
def busy_app(mariadb_server: DbServer, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Database `app` (InnoDB) with 200k filler rows and a writer committing 50-row batches."""
    fresh_db(mariadb_server, tmp_path, "app")
    mariadb_sql(
        mariadb_server,
        tmp_path,
        "CREATE TABLE ids (id bigint AUTO_INCREMENT PRIMARY KEY) ENGINE=InnoDB; "
        "CREATE TABLE batches (b bigint, i int, KEY (b)) ENGINE=InnoDB; "
        "CREATE TABLE filler ENGINE=InnoDB AS SELECT seq AS id, md5(seq) AS v FROM seq_1_to_200000",
        "app",
    )
    cnf = my_cnf(mariadb_server, tmp_path)
    writer = subprocess.Popen(
        ["bash", "-c", f'yes "{BATCH}" | mariadb --defaults-extra-file={cnf} app'],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while int(mariadb_sql(mariadb_server, tmp_path, "SELECT count(*) FROM batches", "app")) < 500:
            assert time.monotonic() < deadline and writer.poll() is None, "the writer is not writing"
            time.sleep(0.2)
        yield writer
    finally:
        os.killpg(writer.pid, signal.SIGTERM)  # yes and mariadb: the group this fixture started
        writer.wait(timeout=30)


def test_dump_under_a_writer_restores_complete_batches(
    mariadb_server: DbServer, busy_app: object, tmp_path: Path
) -> None:
    cfg = write_config(
        tmp_path, f'[sets.my]\ntype = "mariadb"\n{server_keys(mariadb_server)}databases = ["app"]\n'
    )
    before = int(mariadb_sql(mariadb_server, tmp_path, "SELECT count(*) FROM batches", "app"))
    done = backup(tmp_path, cfg, "--set", "my", "--json")
    after = int(mariadb_sql(mariadb_server, tmp_path, "SELECT count(*) FROM batches", "app"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert json_lines(done.stdout)[-1]["files_ok"] == 1

    mariadb_sql(mariadb_server, tmp_path, "DROP DATABASE IF EXISTS app_restored")
    r = sv(
        "restore",
        "latest",
        "--database",
        "app",
        "--to-database",
        "app_restored",
        "--set",
        "my",
        "--config",
        str(cfg),
        repo=tmp_path / "repo",
        check=False,
        env_extra=xdg(tmp_path),
    )
    assert r.returncode == 0, r.stderr
    restored = check_consistent(mariadb_server, tmp_path, "app_restored")
    assert before <= restored <= after
    assert mariadb_sql(mariadb_server, tmp_path, "SELECT count(*) FROM filler", "app_restored") == "200000"

    target = tmp_path / "restic-restore"
    assert restic(tmp_path, "restore", "latest", "--target", str(target)).returncode == 0
    dump = target / ".shadowvault" / "mariadb" / f"{mariadb_server.host}-{mariadb_server.port}" / "app.sql"
    fresh_db(mariadb_server, tmp_path, "app_from_restic")
    with dump.open("rb") as f:
        load = subprocess.run(
            ["mariadb", f"--defaults-extra-file={my_cnf(mariadb_server, tmp_path)}", "app_from_restic"],
            stdin=f,
            capture_output=True,
            timeout=300,
            check=False,
        )
    assert load.returncode == 0, load.stderr
    assert check_consistent(mariadb_server, tmp_path, "app_from_restic") == restored


def test_bad_inputs_and_missing_trailer(mariadb_server: DbServer, tmp_path: Path) -> None:
    fresh_db(mariadb_server, tmp_path, "good")
    mariadb_sql(mariadb_server, tmp_path, "CREATE TABLE t (x int); INSERT INTO t VALUES (1)", "good")
    wrong = tmp_path / "wrong"
    wrong.write_text("nope\n")
    my = '[sets.{}]\ntype = "mariadb"\n{}databases = {}\n{}\n'
    body = (
        my.format("my", server_keys(mariadb_server), '["good", "missing_db"]', "")
        + my.format("badpw", server_keys(mariadb_server, password_file=str(wrong)), '["good"]', "")
        + my.format("down", 'host = "127.0.0.1"\nport = 1\nuser = "x"\n', '["good"]', "")
        + my.format("notrailer", server_keys(mariadb_server), '["good"]', 'options = ["--skip-comments"]')
    )
    cfg = write_config(tmp_path, body)
    done = backup(tmp_path, cfg, "--all-sets")
    assert done.returncode == 3, done.stderr
    lines = [ln for ln in done.stderr.splitlines() if ln.startswith(("failed", "suspect"))]
    assert len(lines) == 4, done.stderr
    missing, badpw, down, trailer = lines
    assert "set my, database missing_db:" in missing and "Unknown database 'missing_db'" in missing
    assert "set badpw, database good:" in badpw and "Access denied" in badpw
    assert "set down, database good:" in down and "Can't connect" in down
    assert (
        trailer.startswith("suspect")
        and "set notrailer, database good:" in trailer
        and "-- Dump completed" in trailer
    )
    assert "Traceback" not in done.stderr
    ls = restic(tmp_path, "ls", "latest", "--tag", "my")
    assert f"/.shadowvault/mariadb/{mariadb_server.host}-{mariadb_server.port}/good.sql" in ls.stdout
