"""MariaDB (and MySQL): ``mariadb-dump --single-transaction --routines --events --triggers``.

A ``password_file`` becomes a private defaults file (``credentials``) passed with
``--defaults-extra-file`` (which must be the first option); without one, the user's own option
files (``~/.my.cnf``) apply. Host, port, socket and user are plain options. Each database is
dumped on its own, without ``CREATE DATABASE``/``USE``, so ``restore --to-database`` can load it
under another name. Stored as ``/.shadowvault/mariadb/<host>-<port>/<db>.sql``; a dump whose
``-- Dump completed`` trailer is missing is suspect.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping

from shadowvault.config.databases import DatabaseServer

from .credentials import PrivateDir, read_password
from .postgresql import ServerUnavailable
from .stream import DumpJob, file_name_of, run_tool

__all__ = ["MariadbTool", "cause"]

DEFAULT_PORT = 3306
TRAILER = b"-- Dump completed"
_SYSTEM = frozenset({"information_schema", "performance_schema", "sys"})


def _option_quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _program(*names: str) -> str:
    """The first of ``names`` on PATH (MariaDB's names first, MySQL's as fallback)."""
    return next((n for n in names if shutil.which(n)), names[0])


class MariadbTool:
    """The client tools of one configured MariaDB/MySQL server."""

    kind = "mariadb"

    def __init__(self, server: DatabaseServer, private: PrivateDir) -> None:
        self.server = server
        self.env: Mapping[str, str] = {k: v for k, v in os.environ.items() if k != "MYSQL_PWD"}
        self._first: list[str] = []
        if server.password_file:
            password = read_password(server.password_file)
            path = private.write("my.cnf", f"[client]\npassword={_option_quote(password)}\n")
            self._first = [f"--defaults-extra-file={path}"]
        conn: list[str] = []
        if server.host:
            conn.append(f"--host={server.host}")
        if server.port:
            conn.append(f"--port={server.port}")
        if server.socket:
            conn.append(f"--socket={server.socket}")
        if server.user:
            conn.append(f"--user={server.user}")
        self._conn = conn

    def _client(self) -> list[str]:
        return [_program("mariadb", "mysql"), *self._first, *self._conn, "--connect-timeout=10"]

    def _query(self, sql: str) -> str:
        code, out, err = run_tool([*self._client(), "--batch", "--skip-column-names", "-e", sql], self.env)
        if code != 0:
            raise ServerUnavailable(cause(err))
        return out.strip()

    def probe(self) -> tuple[str, str | None]:
        """``(server version, data directory)``; ``ServerUnavailable`` with the cause."""
        version, _, datadir = self._query("SELECT @@version, @@datadir").partition("\t")
        return version, datadir or None

    def client_problem(self, server_version: str) -> str:
        """Always "": mariadb-dump reads servers of any version it can connect to."""
        return ""

    def list_databases(self) -> list[str]:
        """Every database but the server's information schemas."""
        return [db for db in self._query("SHOW DATABASES").splitlines() if db and db not in _SYSTEM]

    def jobs(self, databases: list[str]) -> list[DumpJob]:
        """One consistent (single-transaction) SQL dump per database."""
        dump = _program("mariadb-dump", "mysqldump")
        base = [dump, *self._first, *self._conn, "--single-transaction"]
        base += ["--routines", "--events", "--triggers", *self.server.options]
        return [DumpJob(db, file_name_of(db, ".sql"), [*base, "--", db], trailer=TRAILER) for db in databases]

    def restore_argv(self, target: str) -> list[str]:
        """Read a stored dump on stdin into database ``target``."""
        return [*self._client(), "--", target]

    def create_database(self, name: str) -> None:
        """Create ``name`` when missing."""
        self._query(f"CREATE DATABASE IF NOT EXISTS `{name.replace('`', '``')}`")


def cause(lines: list[str]) -> str:
    """The tool's error on one line, without its program-name prefix."""
    text = " ".join(ln.strip() for ln in lines[-2:]) if lines else "no error message"
    for prefix in ("mariadb-dump: ", "mysqldump: ", "ERROR ", "mariadb: ", "mysql: "):
        text = text.replace(prefix, "")
    return " ".join(text.split())
