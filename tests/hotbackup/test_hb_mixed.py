"""Mixed sets (files + database dumps in one snapshot), credentials kept out of every place a
process list, log or snapshot shows, and the live data directory left out of file sets."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from hb_common import json_lines, restic, server_keys, write_config, xdg

from dbservers import DbServer, mariadb_sql, psql
from treeutil import env, repo_activity_db


def _scan_proc(secrets: list[bytes], seen: dict[str, int], leaks: list[str], stop: threading.Event) -> None:
    """Read every process's argv and environment until stopped; note leaks and dump tools seen."""
    me = os.getpid()
    while not stop.is_set():
        for pid in os.listdir("/proc"):
            if not pid.isdigit() or int(pid) == me:
                continue
            for what in ("cmdline", "environ"):
                try:
                    data = Path(f"/proc/{pid}/{what}").read_bytes()
                except OSError:
                    continue
                if what == "cmdline" and data:
                    name = os.path.basename(data.split(b"\0")[0]).decode(errors="replace")
                    seen[name] = seen.get(name, 0) + 1
                for secret in secrets:
                    if secret in data:
                        leaks.append(f"{what} of pid {pid}: {data[:200]!r}")


def test_mixed_set_keeps_credentials_out_of_ps_logs_json_and_snapshot(
    pg_server: DbServer, mariadb_server: DbServer, tmp_path: Path
) -> None:
    psql(pg_server, tmp_path, "DROP DATABASE IF EXISTS creds")
    psql(pg_server, tmp_path, "CREATE DATABASE creds")
    psql(
        pg_server,
        tmp_path,
        "CREATE TABLE t AS SELECT g, md5(g::text) FROM generate_series(1, 300000) g",
        "creds",
    )
    mariadb_sql(mariadb_server, tmp_path, "DROP DATABASE IF EXISTS creds; CREATE DATABASE creds")
    mariadb_sql(
        mariadb_server, tmp_path, "CREATE TABLE t AS SELECT seq, md5(seq) FROM seq_1_to_300000", "creds"
    )
    src = tmp_path / "src"
    src.mkdir()
    (src / "app.conf").write_text("setting = 1\n")

    def entry(server: DbServer) -> str:
        keys = server_keys(server).strip().replace("\n", ", ")
        return f'{{ type = "{server.type}", {keys}, databases = ["creds"] }}'

    cfg = write_config(
        tmp_path,
        f'[sets.mixed]\nsources = ["{src}"]\ndatabases = [{entry(pg_server)}, {entry(mariadb_server)}]\n',
    )
    secrets = [pg_server.password.encode(), mariadb_server.password.encode()]
    tmp_before = set(os.listdir(tempfile.gettempdir()))
    seen: dict[str, int] = {}
    leaks: list[str] = []
    stop = threading.Event()
    scanner = threading.Thread(target=_scan_proc, args=(secrets, seen, leaks, stop), daemon=True)
    scanner.start()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "shadowvault", "backup", "--config", str(cfg), "--set", "mixed", "--json"],
            capture_output=True,
            text=True,
            env=env(tmp_path / "repo", **xdg(tmp_path)),
            timeout=300,
            check=False,
        )
    finally:
        stop.set()
        scanner.join()
    assert done.returncode == 0, done.stderr
    assert seen.get("pg_dump") and seen.get("mariadb-dump"), f"the dump tools were never seen running: {seen}"
    assert leaks == []
    for secret in secrets:
        assert secret.decode() not in done.stdout + done.stderr
        assert secret not in repo_activity_db(tmp_path / "xdg-state", tmp_path / "repo").read_bytes()
    # no credential file or directory outlives the run
    assert not [
        n for n in set(os.listdir(tempfile.gettempdir())) - tmp_before if n.startswith("shadowvault-cred")
    ]

    # one snapshot: the files and both dumps
    ls = restic(tmp_path, "ls", "latest")
    pg_path = f"/.shadowvault/postgresql/{pg_server.host}-{pg_server.port}/creds.dump"
    my_path = f"/.shadowvault/mariadb/{mariadb_server.host}-{mariadb_server.port}/creds.sql"
    for path in (str(src / "app.conf"), pg_path, my_path, pg_path.rsplit("/", 1)[0] + "/globals.sql"):
        assert path in ls.stdout.splitlines(), ls.stdout
    snapshot = restic(tmp_path, "cat", "snapshot", "latest").stdout
    dumps = [
        restic(tmp_path, "dump", "latest", p).stdout
        for p in (my_path, pg_path.rsplit("/", 1)[0] + "/globals.sql")
    ]
    for secret in secrets:
        assert secret.decode() not in snapshot and all(secret.decode() not in d for d in dumps)
    dump_outcomes = [o for o in json_lines(done.stdout) if o.get("message_type") == "summary"]
    assert dump_outcomes[-1]["files_ok"] == 4  # app.conf, globals.sql, two dumps


def test_live_data_directory_is_excluded_from_file_sets_of_the_run(
    pg_server: DbServer, tmp_path: Path
) -> None:
    data = Path(pg_server.data_dir)
    keys = server_keys(pg_server)
    cfg = write_config(
        tmp_path,
        f'[sets.files]\nsources = ["{data.parent}"]\n\n'
        f'[sets.pg]\ntype = "postgresql"\n{keys}databases = ["postgres"]\n',
    )
    done = subprocess.run(
        [sys.executable, "-m", "shadowvault", "backup", "--config", str(cfg), "--all-sets"],
        capture_output=True,
        text=True,
        env=env(tmp_path / "repo", **xdg(tmp_path)),
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = [ln for ln in done.stderr.splitlines() if "live postgresql data directory excluded" in ln]
    assert len(lines) == 1 and str(data) in lines[0], done.stderr
    ls = restic(tmp_path, "ls", "latest", "--tag", "files").stdout.splitlines()
    assert str(data.parent) in ls and not [p for p in ls if p.startswith(str(data))]


def test_the_tools_own_credential_files_serve_when_no_password_file_is_set(
    pg_server: DbServer, mariadb_server: DbServer, tmp_path: Path
) -> None:
    """$PGPASSFILE for PostgreSQL and ~/.my.cnf for MariaDB, as their users already keep them."""
    home = tmp_path / "home"
    home.mkdir()
    (home / ".my.cnf").write_text(f"[client]\npassword={mariadb_server.password}\n")
    (home / ".my.cnf").chmod(0o600)
    pgpass = tmp_path / "pgpass"
    pgpass.write_text(f"{pg_server.host}:{pg_server.port}:*:{pg_server.user}:{pg_server.password}\n")
    pgpass.chmod(0o600)

    def keys(s: DbServer) -> str:
        return f'host = "{s.host}"\nport = {s.port}\nuser = "{s.user}"\n'

    cfg = write_config(
        tmp_path,
        f'[sets.pg]\ntype = "postgresql"\n{keys(pg_server)}databases = ["postgres"]\n\n'
        f'[sets.my]\ntype = "mariadb"\n{keys(mariadb_server)}databases = ["mysql"]\n',
    )
    done = subprocess.run(
        [sys.executable, "-m", "shadowvault", "backup", "--config", str(cfg), "--all-sets"],
        capture_output=True,
        text=True,
        env=env(tmp_path / "repo", HOME=str(home), PGPASSFILE=str(pgpass), **xdg(tmp_path)),
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    ls = restic(tmp_path, "ls", "latest", "--tag", "my").stdout
    assert f"/.shadowvault/mariadb/{mariadb_server.host}-{mariadb_server.port}/mysql.sql" in ls


def test_all_dumps_every_database_the_servers_list(
    pg_server: DbServer, mariadb_server: DbServer, tmp_path: Path
) -> None:
    """`databases = "all"`: every PostgreSQL database but templates, every MariaDB schema but the
    server's information schemas; each one a file of the snapshot."""
    pg_names = psql(pg_server, tmp_path, "SELECT datname FROM pg_database WHERE NOT datistemplate").split()
    my_names = [
        n
        for n in mariadb_sql(mariadb_server, tmp_path, "SHOW DATABASES").split()
        if n not in ("information_schema", "performance_schema", "sys")
    ]
    cfg = write_config(
        tmp_path,
        f'[sets.pg]\ntype = "postgresql"\n{server_keys(pg_server)}databases = "all"\n\n'
        f'[sets.my]\ntype = "mariadb"\n{server_keys(mariadb_server)}databases = "all"\n',
    )
    done = subprocess.run(
        [sys.executable, "-m", "shadowvault", "backup", "--config", str(cfg), "--all-sets"],
        capture_output=True,
        text=True,
        env=env(tmp_path / "repo", **xdg(tmp_path)),
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    pg_dir = f"/.shadowvault/postgresql/{pg_server.host}-{pg_server.port}/"
    my_dir = f"/.shadowvault/mariadb/{mariadb_server.host}-{mariadb_server.port}/"
    pg_files = [
        p[len(pg_dir) :]
        for p in restic(tmp_path, "ls", "latest", "--tag", "pg").stdout.split()
        if p.startswith(pg_dir)
    ]
    my_files = [
        p[len(my_dir) :]
        for p in restic(tmp_path, "ls", "latest", "--tag", "my").stdout.split()
        if p.startswith(my_dir)
    ]
    assert sorted(pg_files) == sorted([f"{n}.dump" for n in pg_names] + ["globals.sql"])
    assert sorted(my_files) == sorted(f"{n}.sql" for n in my_names) and "mysql.sql" in my_files
