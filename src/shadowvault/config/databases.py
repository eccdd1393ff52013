"""Database servers a backup set dumps: ``type = "postgresql" | "mariadb"`` sets and the
``databases = [{...}]`` entries of file-system sets (mixed sets).

Two shapes of the one ``databases`` key, told apart by the set's type:

* in a ``postgresql`` / ``mariadb`` set, a list of database names or the string ``"all"`` (every
  database the server lists, minus templates and system schemas); the connection keys
  (``host``, ``port``, ``socket``, ``user``, ``password_file``, ``options``, and for PostgreSQL
  ``pg_bin_dir`` and ``lock_wait_timeout``) sit beside it;
* in a ``files`` set, a list of tables, each one server with the same keys plus its ``type``:
  ``databases = [{ type = "postgresql", port = 5432, databases = ["app"] }]``.

Passwords are never configuration values: ``password_file`` names a file holding one, else the
tools' own mechanisms apply (``~/.pgpass`` / ``$PGPASSFILE``, ``~/.my.cnf``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "DATABASE_TYPES",
    "DEFAULT_LOCK_WAIT_TIMEOUT",
    "ENTRY_KEYS",
    "PG_ONLY_KEYS",
    "DatabaseServer",
    "check_databases_value",
    "servers_of",
    "type_problem",
]

DATABASE_TYPES: tuple[str, ...] = ("postgresql", "mariadb")
ENTRY_KEYS: tuple[str, ...] = (
    "type",
    "host",
    "port",
    "socket",
    "user",
    "password_file",
    "databases",
    "options",
    "pg_bin_dir",
    "lock_wait_timeout",
)
PG_ONLY_KEYS: tuple[str, ...] = ("pg_bin_dir", "lock_wait_timeout")
ALL = "all"
# pg_dump waits this long for a table's ACCESS SHARE lock before it gives up (and the dump fails):
# a session holding ACCESS EXCLUSIVE (ALTER TABLE, VACUUM FULL, a forgotten LOCK TABLE) must not
# hold a nightly backup for ever. Long enough for a short migration to finish.
DEFAULT_LOCK_WAIT_TIMEOUT = 300


@dataclass(frozen=True)
class DatabaseServer:
    """One server to dump: ``databases`` empty means every database the server lists."""

    type: str
    host: str | None = None
    port: int = 0
    socket: str | None = None
    user: str | None = None
    password_file: str | None = None
    databases: tuple[str, ...] = ()
    options: tuple[str, ...] = ()
    set_name: str = ""
    pg_bin_dir: str | None = None  # PostgreSQL client tools' directory (None: PATH)
    lock_wait_timeout: int = DEFAULT_LOCK_WAIT_TIMEOUT  # seconds; 0: pg_dump waits for ever

    @property
    def all_databases(self) -> bool:
        """True when every database of the server is dumped."""
        return not self.databases


def _names_problem(raw: Any) -> str | None:
    if raw == ALL:
        return None
    if not isinstance(raw, list) or not raw or not all(isinstance(v, str) and v for v in raw):
        return 'must be "all" or a non-empty list of database names'
    return None


def _entry_problem(i: int, entry: dict[str, Any]) -> str | None:
    for key, value in entry.items():
        if key not in ENTRY_KEYS:
            return f"entry {i + 1} has unknown key {key!r}: allowed {', '.join(ENTRY_KEYS)}"
        if key == "type" and value not in DATABASE_TYPES:
            return f"entry {i + 1}: type must be one of {', '.join(DATABASE_TYPES)}"
        if key == "port" and (
            isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535
        ):
            return f"entry {i + 1}: port must be an integer 0–65535"
        if key in ("host", "socket", "user", "password_file", "pg_bin_dir") and not isinstance(value, str):
            return f"entry {i + 1}: {key} must be a string"
        if key == "options" and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            return f"entry {i + 1}: options must be a list of strings"
        if key == "lock_wait_timeout" and (
            isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 86400
        ):
            return f"entry {i + 1}: lock_wait_timeout must be an integer 0–86400 (seconds, 0: no limit)"
        if key == "databases" and _names_problem(value):
            return f"entry {i + 1}: databases {_names_problem(value)}"
    if "type" not in entry:
        return f"entry {i + 1} needs type = {' or '.join(repr(t) for t in DATABASE_TYPES)}"
    if entry["type"] != "postgresql":
        extra = [k for k in PG_ONLY_KEYS if k in entry]
        if extra:
            return f"entry {i + 1}: {', '.join(extra)} applies to postgresql servers only"
    return None


def check_databases_value(raw: Any) -> tuple[Any, str | None]:
    """Validate the ``databases`` key in either shape (the set's type is checked on merge)."""
    if raw == ALL:
        return ALL, None
    if isinstance(raw, list) and raw and all(isinstance(v, dict) for v in raw):
        for i, entry in enumerate(raw):
            problem = _entry_problem(i, entry)
            if problem:
                return raw, problem
        return [dict(e) for e in raw], None
    if isinstance(raw, list) and not raw:
        return [], None
    problem = _names_problem(raw)
    return (raw, problem) if problem else (list(raw), None)


def type_problem(set_type: str, databases: Any, sources: list[str]) -> str | None:
    """Whether ``databases`` fits a set of ``set_type`` (names in server sets, tables in files sets)."""
    tables = isinstance(databases, list) and any(isinstance(v, dict) for v in databases)
    if set_type in DATABASE_TYPES:
        if not databases:
            return f'a {set_type} set needs databases = ["name", ...] or "all"'
        if tables:
            return f'in a {set_type} set, databases lists database names or "all", not tables'
        if sources:
            return f"a {set_type} set has no sources: list the databases, or use a files set with databases"
        return None
    if set_type == "files" and databases and not tables:
        return (
            'in a files set, databases are tables naming a server: databases = [{ type = "postgresql", '
            'databases = ["app"] }]'
        )
    if set_type == "sqlite" and (databases == ALL or tables):
        return 'in a sqlite set, databases lists database files (paths or globs), not "all" or tables'
    return None


def _names(raw: Any) -> tuple[str, ...]:
    return () if raw == ALL else tuple(raw or ())


def servers_of(
    set_name: str,
    set_type: str,
    databases: Any,
    *,
    host: str | None = None,
    port: int = 0,
    socket: str | None = None,
    user: str | None = None,
    password_file: str | None = None,
    options: list[str] | tuple[str, ...] = (),
    pg_bin_dir: str | None = None,
    lock_wait_timeout: int = DEFAULT_LOCK_WAIT_TIMEOUT,
) -> list[DatabaseServer]:
    """The servers a set dumps: the set's own connection (server sets) or its entries (files sets)."""
    if set_type in DATABASE_TYPES:
        return [
            DatabaseServer(
                set_type,
                host,
                port,
                socket,
                user,
                password_file,
                _names(databases),
                tuple(options),
                set_name,
                pg_bin_dir=pg_bin_dir,
                lock_wait_timeout=lock_wait_timeout,
            )
        ]
    if set_type != "files" or not isinstance(databases, list):
        return []
    return [
        DatabaseServer(
            type=e["type"],
            host=e.get("host"),
            port=int(e.get("port", 0)),
            socket=e.get("socket"),
            user=e.get("user"),
            password_file=e.get("password_file"),
            databases=_names(e.get("databases", ALL)),
            options=tuple(e.get("options", ())),
            set_name=set_name,
            pg_bin_dir=e.get("pg_bin_dir"),
            lock_wait_timeout=int(e.get("lock_wait_timeout", lock_wait_timeout)),
        )
        for e in databases
        if isinstance(e, dict)
    ]
