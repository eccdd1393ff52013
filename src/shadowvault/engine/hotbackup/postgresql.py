"""PostgreSQL: ``pg_dump --format=custom`` per database and ``pg_dumpall --globals-only``.

Connection settings travel as libpq environment variables and plain options (host, port, user
are not secrets); a ``password_file`` becomes a private ``PGPASSFILE`` (``credentials``), else
libpq's own ``~/.pgpass`` / ``$PGPASSFILE`` apply. ``--no-password`` everywhere: a missing
password is an error line, never a prompt. Stored as
``/.shadowvault/postgresql/<host>-<port>/<db>.dump`` and ``globals.sql``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping

from shadowvault.config.databases import DatabaseServer

from .credentials import PrivateDir, read_password
from .stream import DumpJob, file_name_of, run_tool

__all__ = ["PostgresTool", "ServerUnavailable", "cause"]

DEFAULT_PORT = 5432


def _pgpass_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace(":", "\\:")


class ServerUnavailable(Exception):
    """The server could not be asked anything; the message is the tool's cause."""


class PostgresTool:
    """The client tools of one configured PostgreSQL server."""

    kind = "postgresql"

    def __init__(self, server: DatabaseServer, private: PrivateDir) -> None:
        self.server = server
        env = dict(os.environ)
        env["PGCONNECT_TIMEOUT"] = env.get("PGCONNECT_TIMEOUT", "10")
        for var, value in (("PGHOST", server.host), ("PGUSER", server.user)):
            if value:
                env[var] = value
        if server.port:
            env["PGPORT"] = str(server.port)
        if server.password_file:
            password = read_password(server.password_file)
            env["PGPASSFILE"] = str(private.write("pgpass", f"*:*:*:*:{_pgpass_escape(password)}\n"))
            env.pop("PGPASSWORD", None)
        self.env: Mapping[str, str] = env
        self.superuser = True

    def _query(self, sql: str, database: str = "postgres") -> str:
        code, out, err = run_tool(
            [
                "psql",
                "--no-psqlrc",
                "--no-password",
                "--tuples-only",
                "--no-align",
                "-d",
                database,
                "-c",
                sql,
            ],
            self.env,
        )
        if code != 0:
            raise ServerUnavailable(cause(err))
        return out.strip()

    def probe(self) -> tuple[str, str | None]:
        """``(server version, data directory or None)``; ``ServerUnavailable`` with the cause.

        One query: the data directory is readable only by superusers and members of
        pg_read_all_settings (CASE evaluates it only for them); without it the exclusion is skipped.
        """
        sql = (
            "SELECT current_setting('server_version'), r.rolsuper, CASE WHEN r.rolsuper OR "
            "pg_has_role('pg_read_all_settings', 'MEMBER') THEN current_setting('data_directory') END "
            "FROM pg_roles r WHERE r.rolname = current_user"
        )
        try:
            row = self._query(sql)
            database = "postgres"
        except ServerUnavailable as e:
            if "does not exist" not in str(e):
                raise
            database = "template1"
            row = self._query(sql, database)
        self._maintenance = database
        version, superuser, data_dir = [*row.split("|"), "", "", ""][:3]
        self.superuser = superuser == "t"
        return version, data_dir or None

    def list_databases(self) -> list[str]:
        """Every database that accepts connections, minus templates."""
        out = self._query(
            "SELECT datname FROM pg_database WHERE NOT datistemplate AND datallowconn ORDER BY datname",
            getattr(self, "_maintenance", "postgres"),
        )
        return [line for line in out.splitlines() if line]

    def jobs(self, databases: list[str]) -> list[DumpJob]:
        """``globals.sql`` first, then one custom-format archive per database."""
        glob_argv = ["pg_dumpall", "--no-password", "--globals-only"]
        if not self.superuser:
            glob_argv.append("--no-role-passwords")  # pg_authid is superuser-only
        jobs = [DumpJob("", "globals.sql", glob_argv)]
        for db in databases:
            argv = ["pg_dump", "--no-password", "--format=custom", *self.server.options, "--dbname", db]
            jobs.append(DumpJob(db, file_name_of(db, ".dump"), argv, verify_argv=["pg_restore", "--list"]))
        return jobs

    def restore_argv(self, target: str) -> list[str]:
        """Read a stored archive on stdin into database ``target``."""
        return [
            "pg_restore",
            "--no-password",
            "--clean",
            "--if-exists",
            "--exit-on-error",
            "--dbname",
            target,
        ]

    def create_database(self, name: str) -> None:
        """Create ``name`` when missing (``--to-database`` into a fresh database)."""
        if not shutil.which("createdb"):
            raise ServerUnavailable("createdb: command not found (install the PostgreSQL client tools)")
        literal = name.replace("'", "''")
        maintenance = getattr(self, "_maintenance", "postgres")
        if self._query(f"SELECT 1 FROM pg_database WHERE datname = '{literal}'", maintenance) == "1":
            return
        code, _, err = run_tool(
            ["createdb", "--no-password", "--maintenance-db", maintenance, "--", name], self.env
        )
        if code != 0:
            raise ServerUnavailable(cause(err))


def cause(lines: list[str]) -> str:
    """The tool's error, without its program-name prefix, on one line."""
    useful = [ln for ln in lines if not ln.startswith(("HINT:", "DETAIL:"))] or lines
    text = " ".join(ln.strip() for ln in useful[-2:]) if useful else "no error message"
    for prefix in ("psql: error: ", "pg_dump: error: ", "pg_dumpall: error: ", "createdb: error: "):
        text = text.replace(prefix, "")
    return " ".join(text.split())
