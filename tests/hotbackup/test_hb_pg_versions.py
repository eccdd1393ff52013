"""PostgreSQL client tools against a newer server, and dumps behind a table lock.

A real PostgreSQL 16 (the pgserver wheel's binaries) beside Debian's PostgreSQL 15: Debian's
pg_dump 15 refuses the newer server, which must give one line per database saying which pg_dump
to install, while the rest of the run is saved; ``pg_bin_dir`` pointing at the PostgreSQL 16 tools
makes the same dump succeed and restore. A session holding ``ACCESS EXCLUSIVE`` on a table makes
the dump fail after ``lock_wait_timeout`` instead of waiting for ever.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from hb_common import backup, restic, server_keys, write_config, xdg

from dbservers import DbServer, pg_env, psql
from shadowvault.engine.hotbackup.postgresql import cause
from treeutil import sv


def fresh_db(server: DbServer, tmp: Path, name: str, rows: int) -> None:
    psql(server, tmp, f"DROP DATABASE IF EXISTS {name}")
    psql(server, tmp, f"CREATE DATABASE {name}")
    psql(server, tmp, f"CREATE TABLE t AS SELECT g AS x FROM generate_series(1, {rows}) g", name)


def failed_lines(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if ln.startswith("failed")]


def names_in(tmp: Path, tag: str) -> set[str]:
    """Paths of the newest snapshot of set ``tag``, as restic lists them."""
    ls = restic(tmp, "ls", "--json", "latest", "--tag", tag)
    assert ls.returncode == 0, ls.stderr
    return {json.loads(ln)["path"] for ln in ls.stdout.splitlines() if '"path"' in ln}


def test_pg_dump_older_than_the_server_is_one_line_per_database(
    pg_server: DbServer, pg16_server: DbServer, tmp_path: Path
) -> None:
    fresh_db(pg16_server, tmp_path, "new_a", 10)
    fresh_db(pg16_server, tmp_path, "new_b", 10)
    fresh_db(pg_server, tmp_path, "old", 10)
    files = tmp_path / "files"
    files.mkdir()
    (files / "notes.txt").write_text("kept\n")
    new = f'{{ type = "postgresql", host = "{pg16_server.host}", port = {pg16_server.port}, user = "postgres", password_file = "{pg16_server.password_file}", databases = ["new_a", "new_b"] }}'  # noqa: E501
    old = f'{{ type = "postgresql", host = "{pg_server.host}", port = {pg_server.port}, user = "postgres", password_file = "{pg_server.password_file}", databases = ["old"] }}'  # noqa: E501
    body = (
        f'[sets.mixed]\nsources = ["{files}"]\ndatabases = [{new}, {old}]\n\n'
        f'[sets.other]\ntype = "postgresql"\n{server_keys(pg_server)}databases = ["old"]\n\n'
        f'[sets.allnew]\ntype = "postgresql"\n{server_keys(pg16_server)}databases = "all"\n'
    )
    cfg = write_config(tmp_path, body)
    done = backup(tmp_path, cfg, "--all-sets")
    assert done.returncode == 3, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    failed = [ln for ln in failed_lines(done.stderr) if "set allnew," not in ln]
    assert len(failed) == 2, done.stderr
    for line, db in zip(failed, ("new_a", "new_b"), strict=True):
        assert f"set mixed, database {db}: pg_dump 15." in line, line
        assert "is older than the server 16." in line and "pg_bin_dir" in line, line
    # "all" is still listed (psql 15 reads the newer server): one line per database, none for "all"
    every = [ln for ln in failed_lines(done.stderr) if "set allnew," in ln]
    named = {ln.split("set allnew, database ", 1)[1].split(":", 1)[0] for ln in every}
    assert {"postgres", "new_a", "new_b"} <= named and "all" not in named, every
    assert len(named) == len(every) and all("is older than the server 16." in ln for ln in every), every
    # the files, the other server's database and the other set are in their snapshots
    mixed = names_in(tmp_path, "mixed")
    label = f"{pg_server.host}-{pg_server.port}"
    assert str(files / "notes.txt") in mixed
    assert f"/.shadowvault/postgresql/{label}/old.dump" in mixed
    assert not any(p.endswith(("new_a.dump", "new_b.dump")) for p in mixed), mixed
    assert f"/.shadowvault/postgresql/{label}/old.dump" in names_in(tmp_path, "other")


def test_pg_dump_mismatch_text_from_the_real_tool(pg16_server: DbServer, tmp_path: Path) -> None:
    """Should the check before the dump not tell (an unreadable --version), pg_dump's own refusal
    gets the same sentence: fed its real stderr."""
    out = subprocess.run(
        ["pg_dump", "-w", "--format=custom", "-d", "postgres"],
        capture_output=True,
        text=True,
        env=pg_env(pg16_server, tmp_path),
        timeout=60,
        check=False,
    )
    assert out.returncode != 0 and "server version mismatch" in out.stderr, out.stderr
    text = cause(out.stderr.splitlines())
    assert text.startswith("pg_dump 15.") and "is older than the server 16." in text, text
    assert "pg_bin_dir" in text


def test_pg_bin_dir_dumps_the_newer_server_and_restores(pg16_server: DbServer, tmp_path: Path) -> None:
    fresh_db(pg16_server, tmp_path, "new_c", 1234)
    cfg = write_config(
        tmp_path,
        f'[sets.pg16]\ntype = "postgresql"\n{server_keys(pg16_server)}databases = ["new_c"]\n'
        f'pg_bin_dir = "{pg16_server.bin_dir}"\n\n'
        f'[sets.badbin]\ntype = "postgresql"\n{server_keys(pg16_server)}databases = ["new_c"]\n'
        f'pg_bin_dir = "{tmp_path}"\n',
    )
    done = backup(tmp_path, cfg, "--set", "pg16")
    assert done.returncode == 0, done.stdout + done.stderr
    psql(pg16_server, tmp_path, "DROP DATABASE IF EXISTS new_c_restored")
    r = sv(
        "restore",
        "latest",
        "--database",
        "new_c",
        "--to-database",
        "new_c_restored",
        "--set",
        "pg16",
        "--config",
        str(cfg),
        repo=tmp_path / "repo",
        check=False,
        env_extra=xdg(tmp_path),
    )
    assert r.returncode == 0, r.stderr
    assert psql(pg16_server, tmp_path, "SELECT count(*), sum(x) FROM t", "new_c_restored") == "1234|761995"
    # a directory without pg_dump: one line saying so
    bad = backup(tmp_path, cfg, "--set", "badbin")
    assert bad.returncode == 3, bad.stderr
    assert failed_lines(bad.stderr) == [
        ln for ln in bad.stderr.splitlines() if f"set badbin, database new_c: pg_bin_dir {tmp_path}" in ln
    ]
    assert len(failed_lines(bad.stderr)) == 1 and "holds no pg_dump" in bad.stderr


def test_a_locked_table_fails_its_dump_after_lock_wait_timeout(pg_server: DbServer, tmp_path: Path) -> None:
    fresh_db(pg_server, tmp_path, "locked", 10)
    fresh_db(pg_server, tmp_path, "free", 10)
    holder = subprocess.Popen(
        [
            "psql",
            "-X",
            "-w",
            "-d",
            "locked",
            "-c",
            "BEGIN; LOCK TABLE t IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(300)",
        ],
        env=pg_env(pg_server, tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        held = "SELECT count(*) FROM pg_locks WHERE mode = 'AccessExclusiveLock' AND relation = 't'::regclass"
        while psql(pg_server, tmp_path, held, "locked") != "1":
            assert time.monotonic() < deadline and holder.poll() is None, "the lock was not taken"
            time.sleep(0.2)
        cfg = write_config(
            tmp_path,
            f'[sets.pg]\ntype = "postgresql"\n{server_keys(pg_server)}databases = ["locked", "free"]\n'
            "lock_wait_timeout = 2\n\n"
            f'[sets.pgopt]\ntype = "postgresql"\n{server_keys(pg_server)}databases = ["locked"]\n'
            'lock_wait_timeout = 0\noptions = ["--lock-wait-timeout=1s"]\n',
        )
        start = time.monotonic()
        done = backup(tmp_path, cfg, "--set", "pg")
        took = time.monotonic() - start
        # the set's own --lock-wait-timeout in options, with lock_wait_timeout = 0 (no flag of ours)
        own = backup(tmp_path, cfg, "--set", "pgopt")
        assert holder.poll() is None, "the lock holder ended before the dump gave up"
    finally:
        holder.kill()
        holder.wait(timeout=30)
    assert done.returncode == 3, done.stdout + done.stderr
    assert took < 60, took  # the holder keeps its lock for 300 s
    failed = failed_lines(done.stderr)
    assert len(failed) == 1, done.stderr
    assert "set pg, database locked: pg_dump failed" in failed[0], failed[0]
    assert "public.t stayed locked by another session for longer than lock_wait_timeout (2 s)" in failed[0]
    assert own.returncode == 3, own.stdout + own.stderr
    assert failed_lines(own.stderr) == [
        ln for ln in own.stderr.splitlines() if "longer than the --lock-wait-timeout in options" in ln
    ]
    assert len(failed_lines(own.stderr)) == 1, own.stderr
    label = f"{pg_server.host}-{pg_server.port}"
    saved = names_in(tmp_path, "pg")
    assert f"/.shadowvault/postgresql/{label}/free.dump" in saved
    assert f"/.shadowvault/postgresql/{label}/locked.dump" not in saved


def test_lock_wait_timeout_default_and_checks(tmp_path: Path) -> None:
    """The built-in default bounds the wait; bad values and pg-only keys on MariaDB are refused."""
    repo = tmp_path / "repo"
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[repository]\npath = "{repo}"\n\n[sets.pg]\ntype = "postgresql"\ndatabases = ["app"]\n')
    shown = sv(
        "sets", "show", "pg", "--json", "--config", str(cfg), repo=repo, check=False, env_extra=xdg(tmp_path)
    )
    assert shown.returncode == 0, shown.stderr
    options = json.loads(shown.stdout)["options"]
    assert options["lock_wait_timeout"] == {"value": 300, "origin": "built-in"}
    assert options["pg_bin_dir"]["value"] is None
    for body, expected in (
        (
            '[sets.pg]\ntype = "postgresql"\ndatabases = ["app"]\nlock_wait_timeout = -1\n',
            "lock_wait_timeout",
        ),
        ('[sets.m]\ntype = "mariadb"\ndatabases = ["app"]\npg_bin_dir = "/usr/bin"\n', "pg_bin_dir applies"),
        (
            '[sets.m]\ntype = "mariadb"\ndatabases = ["app"]\nlock_wait_timeout = 5\n',
            "lock_wait_timeout applies",
        ),
        (
            '[sets.f]\nsources = ["/etc"]\ndatabases = [{ type = "mariadb", lock_wait_timeout = 5 }]\n',
            "lock_wait_timeout applies to postgresql servers only",
        ),
    ):
        cfg.write_text(f'[repository]\npath = "{repo}"\n\n{body}')
        bad = sv("sets", "show", "--config", str(cfg), repo=repo, check=False, env_extra=xdg(tmp_path))
        assert bad.returncode != 0 and expected in bad.stderr, bad.stderr
        assert "Traceback" not in bad.stderr
