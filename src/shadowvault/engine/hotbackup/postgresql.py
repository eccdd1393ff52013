"""PostgreSQL: ``pg_dump --format=custom`` per database and ``pg_dumpall --globals-only``.

Connection settings travel as libpq environment variables and plain options (host, port, user
are not secrets); a ``password_file`` becomes a private ``PGPASSFILE`` (``credentials``), else
libpq's own ``~/.pgpass`` / ``$PGPASSFILE`` apply. ``--no-password`` everywhere: a missing
password is an error line, never a prompt. Stored as
``/.shadowvault/postgresql/<host>-<port>/<db>.dump`` and ``globals.sql``.

The client tools come from ``pg_bin_dir`` when the set names one, else from PATH. pg_dump refuses
a server of a newer major version ("aborting because of server version mismatch"), so its version
is compared with the server's before any dump starts and each database then fails with one line
that says which pg_dump to install. ``--lock-wait-timeout`` bounds how long pg_dump waits for a
table another session holds in ACCESS EXCLUSIVE mode (its default is for ever).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping

from shadowvault.config.databases import DatabaseServer
from shadowvault.errors import ConfigError

from .credentials import PrivateDir, read_password
from .stream import DumpJob, file_name_of, run_tool

__all__ = ["PostgresTool", "ServerUnavailable", "cause", "lock_wait_limit", "major_of", "too_old"]

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
        if server.pg_bin_dir and not os.access(self.program("pg_dump"), os.X_OK):
            raise ConfigError(
                f"pg_bin_dir {server.pg_bin_dir} holds no pg_dump: name the bin directory of a "
                "PostgreSQL client installation (e.g. /usr/lib/postgresql/17/bin)"
            )

    def program(self, name: str) -> str:
        """``name`` in ``pg_bin_dir`` when the set names one, else as found on PATH."""
        bin_dir = self.server.pg_bin_dir
        return os.path.join(os.path.expanduser(bin_dir), name) if bin_dir else name

    def client_problem(self, server_version: str) -> str:
        """Why this pg_dump cannot dump a server of ``server_version`` ("" when it can).

        Only an older major version is refused by pg_dump; a newer one dumps older servers. An
        unreadable ``--version`` is no verdict: the dump itself then says what is wrong.
        """
        code, out, _ = run_tool([self.program("pg_dump"), "--version"], self.env)
        found = re.search(r"\)\s+(\d[\w.]*)", out) if code == 0 else None
        if found is None:
            return ""
        client = found.group(1)
        client_major, server_major = major_of(client), major_of(server_version)
        if client_major and server_major and client_major < server_major:
            return too_old("pg_dump", client, server_version)
        return ""

    def _query(self, sql: str, database: str = "postgres") -> str:
        code, out, err = run_tool(
            [
                self.program("psql"),
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
        glob_argv = [self.program("pg_dumpall"), "--no-password", "--globals-only"]
        if not self.superuser:
            glob_argv.append("--no-role-passwords")  # pg_authid is superuser-only
        jobs = [DumpJob("", "globals.sql", glob_argv)]
        # An explicit --lock-wait-timeout in the set's options wins over lock_wait_timeout.
        wait = self.server.lock_wait_timeout
        explicit = any(o.startswith("--lock-wait-timeout") for o in self.server.options)
        lock_wait = [f"--lock-wait-timeout={wait}s"] if wait and not explicit else []
        for db in databases:
            argv = [
                self.program("pg_dump"),
                "--no-password",
                "--format=custom",
                *lock_wait,
                *self.server.options,
                "--dbname",
                db,
            ]
            verify = [self.program("pg_restore"), "--list"]
            jobs.append(DumpJob(db, file_name_of(db, ".dump"), argv, verify_argv=verify))
        return jobs

    def restore_argv(self, target: str) -> list[str]:
        """Read a stored archive on stdin into database ``target``."""
        return [
            self.program("pg_restore"),
            "--no-password",
            "--clean",
            "--if-exists",
            "--exit-on-error",
            "--dbname",
            target,
        ]

    def create_database(self, name: str) -> None:
        """Create ``name`` when missing (``--to-database`` into a fresh database)."""
        if not shutil.which(self.program("createdb")):
            raise ServerUnavailable("createdb: command not found (install the PostgreSQL client tools)")
        literal = name.replace("'", "''")
        maintenance = getattr(self, "_maintenance", "postgres")
        if self._query(f"SELECT 1 FROM pg_database WHERE datname = '{literal}'", maintenance) == "1":
            return
        code, _, err = run_tool(
            [self.program("createdb"), "--no-password", "--maintenance-db", maintenance, "--", name],
            self.env,
        )
        if code != 0:
            raise ServerUnavailable(cause(err))


def major_of(version: str) -> tuple[int, ...]:
    """The major version of ``16.2``, ``16.2 (Debian …)``, ``17beta1`` or ``9.6.24``: (16,), (17,),
    (9, 6) (before 10 the major version had two numbers); () when there is none."""
    found = re.match(r"\s*(\d+)(?:\.(\d+))?", version)
    if found is None:
        return ()
    first = int(found.group(1))
    if first >= 10 or found.group(2) is None:
        return (first,)
    return (first, int(found.group(2)))


def too_old(program: str, client: str, server: str) -> str:
    """The one line for a client tool older than its server, saying what to do."""
    server = server.split()[0] if server.split() else server
    need = ".".join(str(n) for n in major_of(server))
    return (
        f"{program} {client.split()[0]} is older than the server {server} and refuses to dump it: "
        f"install PostgreSQL {need} (or newer) client tools and set pg_bin_dir to their bin directory"
    )


_MISMATCH = re.compile(r"server version: ([^;]+); (pg_dump\w*) version: (\S+)")
_LOCK_QUERY = re.compile(r"Query was: (LOCK TABLE \S+)")


def lock_wait_limit(server: DatabaseServer) -> str:
    """How long pg_dump waits for a table lock, as the error line names it."""
    if any(o.startswith("--lock-wait-timeout") for o in server.options):
        return "the --lock-wait-timeout in options"
    return f"lock_wait_timeout ({server.lock_wait_timeout} s)"


def cause(lines: list[str], lock_wait: str = "the lock wait timeout") -> str:
    """The tool's error, without its program-name prefix, on one line.

    Two errors get their own sentence, as the tool's wording does not say what to do: the server
    version mismatch (when the version check before the dump could not tell) and a table lock
    waited for longer than ``lock_wait`` (:func:`lock_wait_limit`; pg_dump reports it as a
    statement timeout).
    """
    for ln in lines:
        mismatch = _MISMATCH.search(ln)
        if mismatch:
            return too_old(mismatch.group(2), mismatch.group(3), mismatch.group(1))
    locked = next((m for m in map(_LOCK_QUERY.search, lines) if m), None)
    if locked and any("statement timeout" in ln for ln in lines):
        return (
            f"{locked.group(1).removeprefix('LOCK TABLE ')} stayed locked by another session for "
            f"longer than {lock_wait}: "
            "find the session holding it (pg_locks) or raise lock_wait_timeout"
        )
    useful = [ln for ln in lines if not ln.startswith(("HINT:", "DETAIL:"))] or lines
    text = " ".join(ln.strip() for ln in useful[-2:]) if useful else "no error message"
    for prefix in ("psql: error: ", "pg_dump: error: ", "pg_dumpall: error: ", "createdb: error: "):
        text = text.replace(prefix, "")
    return " ".join(text.split())
