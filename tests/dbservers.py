"""Private PostgreSQL and MariaDB servers for the hot-backup tests (session fixtures).

CI starts them with ``.ci/services/{postgresql,mariadb}.sh`` and exports where they are
(``SHADOWVAULT_TEST_PG_*``, ``SHADOWVAULT_TEST_MARIADB_*``); without those variables the fixture
runs the same script into a fresh directory under /tmp (the servers' own users must reach it,
which pytest's 0700 tmp dirs would not allow) and stops it at the end of the session.

``pg16_server`` is a second PostgreSQL, of a newer major version than Debian's client tools: the
binaries of the ``pgserver`` wheel (PostgreSQL 16), started by the same script with
``SHADOWVAULT_PG_BIN`` pointing at a copy of them (the wheel lives under /root, which the
``postgres`` user cannot enter).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import require, require_binary, require_root

SERVICES = Path(__file__).resolve().parent.parent / ".ci" / "services"


@dataclass(frozen=True)
class DbServer:
    """Where a test server listens and how to log in (the password lives in ``password_file``)."""

    type: str
    host: str
    port: int
    user: str
    password_file: str
    data_dir: str
    socket: str
    bin_dir: str = ""  # the server's own client tools (pg16_server), "" when PATH has them

    @property
    def password(self) -> str:
        return Path(self.password_file).read_text().strip()


def _start(
    script: str, prefix: str, prepare: Callable[[Path], dict[str, str]] | None = None
) -> Iterator[dict[str, str]]:
    """Run ``script`` into a fresh directory (``prepare`` may first put files there and return
    variables for the script), unless CI already did and exported ``prefix…`` variables."""
    require_root()
    found = {k: v for k, v in os.environ.items() if k.startswith(prefix)}
    if found:
        yield found
        return
    work = tempfile.mkdtemp(prefix="shadowvault-test-db-")
    path = str(SERVICES / script)
    env = dict(os.environ)
    if prepare is not None:
        env.update(prepare(Path(work)))
    out = subprocess.run(
        ["bash", path, "start", work], capture_output=True, text=True, timeout=300, check=False, env=env
    )
    try:
        require(out.returncode == 0, f"{script} could not start its server: {out.stderr.strip()[-300:]}")
        values: dict[str, str] = {}
        for line in out.stdout.splitlines():
            if line.startswith("export "):
                key, _, value = line[len("export ") :].partition("=")
                values[key] = value
        yield values
    finally:
        subprocess.run(["bash", path, "stop", work], capture_output=True, timeout=300, check=False, env=env)
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[DbServer]:
    """A running PostgreSQL with a password superuser on a loopback port."""
    for tool in ("pg_dump", "pg_dumpall", "pg_restore", "psql", "createdb"):
        require_binary(tool)
    for v in _start("postgresql.sh", "SHADOWVAULT_TEST_PG_"):
        yield DbServer(
            "postgresql",
            v["SHADOWVAULT_TEST_PG_HOST"],
            int(v["SHADOWVAULT_TEST_PG_PORT"]),
            v["SHADOWVAULT_TEST_PG_USER"],
            v["SHADOWVAULT_TEST_PG_PASSWORD_FILE"],
            v["SHADOWVAULT_TEST_PG_DATA"],
            v["SHADOWVAULT_TEST_PG_SOCKET_DIR"],
        )


def _pgserver_binaries(work: Path) -> dict[str, str]:
    """Copy the pgserver wheel's PostgreSQL (bin, lib, share, and the libpq its RPATH names in
    ../../../pgserver.libs) to ``work`` where the server's user can run it. The package is found,
    not imported: importing it creates platformdirs directories and warns."""
    spec = importlib.util.find_spec("pgserver")
    locations = list(spec.submodule_search_locations or []) if spec else []
    require(bool(locations), "needs the pgserver wheel (pip install -r requirements.lock)")
    package = Path(locations[0])
    copy = work / "pg16" / "pgserver"
    shutil.copytree(package / "pginstall", copy / "pginstall", symlinks=True)
    shutil.copytree(package.parent / "pgserver.libs", copy.parent / "pgserver.libs", symlinks=True)
    for root, dirs, _ in os.walk(work / "pg16"):
        for d in dirs:
            os.chmod(os.path.join(root, d), 0o755)
    return {"SHADOWVAULT_PG_BIN": str(copy / "pginstall" / "bin")}


@pytest.fixture(scope="session")
def pg16_server() -> Iterator[DbServer]:
    """A running PostgreSQL 16 (newer than Debian's pg_dump 15) with its own client tools."""
    for tool in ("pg_dump", "psql"):
        require_binary(tool)
    # A prefix CI never exports: this server is always the fixture's own.
    for v in _start("postgresql.sh", "SHADOWVAULT_TEST_PG16_ONLY_", _pgserver_binaries):
        yield DbServer(
            "postgresql",
            v["SHADOWVAULT_TEST_PG_HOST"],
            int(v["SHADOWVAULT_TEST_PG_PORT"]),
            v["SHADOWVAULT_TEST_PG_USER"],
            v["SHADOWVAULT_TEST_PG_PASSWORD_FILE"],
            v["SHADOWVAULT_TEST_PG_DATA"],
            v["SHADOWVAULT_TEST_PG_SOCKET_DIR"],
            v["SHADOWVAULT_TEST_PG_BIN"],
        )


@pytest.fixture(scope="session")
def mariadb_server() -> Iterator[DbServer]:
    """A running MariaDB with a password user on a loopback port."""
    for tool in ("mariadb", "mariadb-dump"):
        require_binary(tool)
    for v in _start("mariadb.sh", "SHADOWVAULT_TEST_MARIADB_"):
        yield DbServer(
            "mariadb",
            v["SHADOWVAULT_TEST_MARIADB_HOST"],
            int(v["SHADOWVAULT_TEST_MARIADB_PORT"]),
            v["SHADOWVAULT_TEST_MARIADB_USER"],
            v["SHADOWVAULT_TEST_MARIADB_PASSWORD_FILE"],
            v["SHADOWVAULT_TEST_MARIADB_DATADIR"],
            v["SHADOWVAULT_TEST_MARIADB_SOCKET"],
        )


def pg_env(server: DbServer, tmp: Path) -> dict[str, str]:
    """libpq variables for the test's own psql/pgbench (a 0600 pgpass in ``tmp``)."""
    pgpass = tmp / "pgpass"
    pgpass.write_text(f"*:*:*:*:{server.password}\n")
    pgpass.chmod(0o600)
    e = dict(os.environ)
    e.update(PGHOST=server.host, PGPORT=str(server.port), PGUSER=server.user, PGPASSFILE=str(pgpass))
    return e


def psql(server: DbServer, tmp: Path, sql: str, db: str = "postgres") -> str:
    out = subprocess.run(
        ["psql", "-X", "-w", "-v", "ON_ERROR_STOP=1", "-At", "-d", db, "-c", sql],
        capture_output=True,
        text=True,
        env=pg_env(server, tmp),
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def my_cnf(server: DbServer, tmp: Path) -> Path:
    cnf = tmp / "my.cnf"
    cnf.write_text(
        f"[client]\nuser={server.user}\npassword={server.password}\nhost={server.host}\nport={server.port}\n"
    )
    cnf.chmod(0o600)
    return cnf


def mariadb_sql(server: DbServer, tmp: Path, sql: str, db: str = "") -> str:
    argv = ["mariadb", f"--defaults-extra-file={my_cnf(server, tmp)}", "-N", "-B", "-e", sql]
    out = subprocess.run(
        [*argv, *([db] if db else [])], capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()
