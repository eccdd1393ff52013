"""The activity log: a local SQLite record of every backup session and its problem files.

One database per repository (the CLI keeps them under ``platformdirs.user_state_dir``, named by
the repository's id, see :func:`log_path`; a per-user ``activity.db`` holds runs without a
repository and the sessions of versions that kept one log for everything) with three tables:

* ``sessions`` — one row per session: the repository's id, set name, host, start/end, status (``running``,
  ``completed``, ``partial`` when stop_on_errors cut the set short, ``failed``), byte and file counts,
  snapshot id, exit code, and the identity of the process that ran it (pid, boot id, process
  start time);
* ``files`` — one row per ``suspect`` or ``failed`` file (every file when the set asks for a
  detailed log): path, class, reason, message, attempts, writer processes, the whole outcome;
* ``warnings`` — session-level messages ("leases unavailable on /srv: stat checks only").

Crash tolerance: WAL journal, so readers never block the writer and a killed writer loses at most
the open batch; file rows are committed in batches (``batch_size`` rows or ``batch_seconds``),
everything else immediately. A session still marked ``running`` whose process is gone — another
boot, no such pid, or a pid reused by a process that started later — is reported as
``interrupted``; nothing is rewritten on read, so a read-only copy of the log shows the same.

The log holds file paths, so it is private: the database (and SQLite's ``-wal``/``-shm`` files,
which take its mode) is created 0600 in a 0700 directory, and an older, more open one is
narrowed when opened.

Paths are stored twice: as exact bytes (``path_raw``) and as text for people and queries, with
undecodable bytes shown as ``\\xNN``.

The process identity and its liveness check are ``engine.liveness``; the records this log gives
back (``SessionRecord``, ``FileRecord``) are ``engine.activity_records`` (both re-exported here).
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shadowvault import interrupts
from shadowvault.errors import FatalError, UsageError

from .activity_records import FileRecord, SessionRecord, SessionStatus
from .liveness import ProcessIdentity, current_identity, is_stale, process_start_ticks, read_boot_id

__all__ = [
    "ActivityLog",
    "FileRecord",
    "ProcessIdentity",
    "SessionRecord",
    "SessionStatus",
    "current_identity",
    "is_stale",
    "log_path",
    "process_start_ticks",
]

_FINAL_STATUSES = ("completed", "partial", "failed", "interrupted", "missed")
_SCHEMA_VERSION = 2
# Version 1 had no repository column; it is added in place, so existing logs keep working.
_MIGRATIONS = {1: "ALTER TABLE sessions ADD COLUMN repository TEXT;"}
_CLASSES = ("ok", "suspect", "failed")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    set_name TEXT,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    boot_id TEXT NOT NULL,
    proc_start INTEGER,
    started REAL NOT NULL,
    ended REAL,
    status TEXT NOT NULL,
    bytes_read INTEGER NOT NULL DEFAULT 0,
    bytes_added INTEGER NOT NULL DEFAULT 0,
    files_ok INTEGER,
    files_suspect INTEGER,
    files_failed INTEGER,
    snapshot_id TEXT,
    exit_code INTEGER,
    repository TEXT
);
CREATE INDEX IF NOT EXISTS sessions_set ON sessions (set_name, started);
CREATE INDEX IF NOT EXISTS sessions_snapshot ON sessions (snapshot_id);
CREATE TABLE IF NOT EXISTS files (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id INTEGER NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    recorded REAL NOT NULL,
    path TEXT NOT NULL,
    path_raw BLOB NOT NULL,
    class TEXT NOT NULL,
    reason TEXT,
    message TEXT,
    attempts INTEGER NOT NULL DEFAULT 1,
    writers TEXT NOT NULL DEFAULT '[]',
    detail TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS files_session ON files (session_id, class);
CREATE TABLE IF NOT EXISTS warnings (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id INTEGER NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    recorded REAL NOT NULL,
    message TEXT NOT NULL
);
"""


def log_path(state_dir: Path, repository_id: str | None) -> Path:
    """Where the activity log of a repository lives (``None``: the per-user log)."""
    if repository_id is None:
        return state_dir / "activity.db"
    return state_dir / "repositories" / f"{repository_id}.db"


def _private(path: Path) -> None:
    """Make ``path``'s directory 0700 and the file 0600 before SQLite opens it."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    for d in (path.parent, path.parent.parent):
        # Our own directories only: the user's home or /var/lib are not ours to narrow.
        if d.name in ("shadowvault", "repositories") and d.stat().st_uid == os.getuid():
            os.chmod(d, 0o700)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    for extra in ("-wal", "-shm"):
        side = Path(f"{path}{extra}")
        if side.exists():
            os.chmod(side, 0o600)


def _display(text: str) -> str:
    """Text that SQLite can store: lone surrogates (undecodable file-name bytes) become \\xNN."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _text(value: Any) -> str | None:
    """Enum members (``Classification.SUSPECT``) by their value, other things as text."""
    if value is None:
        return None
    return str(getattr(value, "value", value))


def _when(ts: float | None) -> datetime | None:
    return datetime.fromtimestamp(ts, UTC) if ts is not None else None


# Reasons engine.hotbackup gives database dumps (ok, suspect, failed).
DUMP_REASONS = ("database-dump", "dump-unverified", "dump-failed")


class ActivityLog:
    """Append-mostly SQLite log of sessions and file outcomes; safe to share between threads.

    ``ActivityLog(path)`` creates the database (and its directory) when missing. Use it as a
    context manager or call :meth:`close`; pending file rows are committed on close.
    """

    def __init__(self, db_path: Path, *, batch_size: int = 200, batch_seconds: float = 1.0) -> None:
        self.path = Path(db_path)
        self.batch_size = batch_size
        self.batch_seconds = batch_seconds
        self._lock = threading.RLock()
        self._pending: list[tuple[Any, ...]] = []
        self._last_flush = time.monotonic()
        try:
            _private(self.path)
            # Worker threads may record files; the lock serialises use of the one connection.
            self._db = sqlite3.connect(self.path, timeout=10.0, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > _SCHEMA_VERSION:
                self._db.close()
                raise FatalError(
                    f"activity log {self.path} has format {version}; this shadowvault knows up to "
                    f"{_SCHEMA_VERSION} — use a newer shadowvault or another log file"
                )
            if version < _SCHEMA_VERSION:
                self._upgrade()
        except (OSError, sqlite3.Error) as e:
            raise FatalError(f"cannot open activity log {self.path}: {e}") from e

    def _upgrade(self) -> None:
        """Create the tables or migrate an older log, in one transaction. The version is read
        again inside it: another client may have upgraded the log since we looked."""
        with self._transaction():
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version == 0:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        self._db.execute(statement)
            else:
                for v in range(version, _SCHEMA_VERSION):
                    self._db.execute(_MIGRATIONS[v])
            self._db.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")

    # -- context management ------------------------------------------------------------------

    def __enter__(self) -> ActivityLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Commit pending rows and close the database."""
        with self._lock:
            self.flush()
            self._db.close()

    def _transaction(self) -> _Tx:
        return _Tx(self._db)

    # -- writing -------------------------------------------------------------------------------

    def start_session(
        self, set_name: str | None, host: str, repository: str | None = None, *, started: float | None = None
    ) -> int:
        """Record a new running session of this process (into ``repository``, its id); returns its id.

        ``started`` (epoch seconds) is for the scheduler's own clock; default now."""
        me = current_identity()
        when = time.time() if started is None else started
        with self._lock, self._transaction():
            cur = self._db.execute(
                "INSERT INTO sessions (set_name, host, pid, boot_id, proc_start, started, status, repository)"
                " VALUES (?, ?, ?, ?, ?, ?, 'running', ?)",
                (set_name, host, me.pid, me.boot_id, me.start_ticks, when, repository),
            )
            assert cur.lastrowid is not None
            return cur.lastrowid

    def record_file(self, sid: int, path: str | bytes, outcome: dict[str, Any]) -> None:
        """Record one file's outcome. ``outcome`` has ``class`` and optionally ``reason``,
        ``message``, ``attempts`` (a count or the list of attempts) and ``writers``; the whole
        dict is kept as JSON too. Committed with the next batch."""
        raw = path if isinstance(path, bytes) else os.fsencode(path)
        attempts = outcome.get("attempts", 1)
        count = len(attempts) if isinstance(attempts, list) else int(attempts)
        message = outcome.get("message")
        row = (
            sid,
            time.time(),
            _display(os.fsdecode(raw)),
            raw,
            _text(outcome["class"]),
            _text(outcome.get("reason")),
            _display(message) if isinstance(message, str) else None,
            count,
            json.dumps(outcome.get("writers") or [], default=str),
            json.dumps(outcome, default=str, ensure_ascii=True),
        )
        with self._lock:
            self._pending.append(row)
            due = time.monotonic() - self._last_flush >= self.batch_seconds
            if len(self._pending) >= self.batch_size or due:
                self.flush()

    def flush(self) -> None:
        """Commit the file rows recorded so far."""
        with self._lock:
            if self._pending:
                with self._transaction():
                    self._db.executemany(
                        "INSERT INTO files (session_id, recorded, path, path_raw, class, reason, message,"
                        " attempts, writers, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        self._pending,
                    )
                self._pending.clear()
            self._last_flush = time.monotonic()

    def warn(self, sid: int, message: str) -> None:
        """Record a session-level warning (committed at once)."""
        with self._lock:
            self.flush()
            with self._transaction():
                self._db.execute(
                    "INSERT INTO warnings (session_id, recorded, message) VALUES (?, ?, ?)",
                    (sid, time.time(), _display(message)),
                )

    def finish_session(
        self,
        sid: int,
        *,
        status: SessionStatus,
        exit_code: int | None,
        snapshot_id: str | None,
        bytes_read: int,
        bytes_added: int,
        counts: dict[str, int],
    ) -> None:
        """Close a session with its final status and totals (``counts`` by class)."""
        if status not in _FINAL_STATUSES:
            raise ValueError(f"final status must be one of {', '.join(_FINAL_STATUSES)}, not {status!r}")
        with self._lock:
            self.flush()
            with self._transaction():
                self._db.execute(
                    "UPDATE sessions SET ended = ?, status = ?, exit_code = ?, snapshot_id = ?,"
                    " bytes_read = ?, bytes_added = ?, files_ok = ?, files_suspect = ?, files_failed = ?"
                    " WHERE id = ?",
                    (
                        time.time(),
                        status,
                        exit_code,
                        snapshot_id,
                        bytes_read,
                        bytes_added,
                        *(counts.get(c, 0) for c in _CLASSES),
                        sid,
                    ),
                )

    def delete_sessions_before(self, when: datetime) -> int:
        """Remove finished sessions that started before ``when`` (housekeeping); returns how many."""
        with self._lock:
            self.flush()
            with self._transaction():
                cur = self._db.execute(
                    "DELETE FROM sessions WHERE started < ? AND status != 'running'", (when.timestamp(),)
                )
                return cur.rowcount

    # -- reading -------------------------------------------------------------------------------

    _SESSION_COLUMNS = (
        "id, set_name, host, pid, boot_id, proc_start, started, ended, status, bytes_read,"
        " bytes_added, files_ok, files_suspect, files_failed, snapshot_id, exit_code, repository"
    )

    def sessions(self, set_name: str | None = None, *, limit: int | None = None) -> list[SessionRecord]:
        """Sessions newest first, optionally of one set; dead "running" ones show "interrupted"."""
        query = f"SELECT {self._SESSION_COLUMNS} FROM sessions"
        params: list[Any] = []
        if set_name is not None:
            query += " WHERE set_name = ?"
            params.append(set_name)
        query += " ORDER BY started DESC, id DESC"
        if limit is not None:
            query += " LIMIT ?"
            params.append(limit)
        return self._records(query, params)

    def session(self, sid: int) -> SessionRecord | None:
        """One session by id, or ``None``."""
        found = self._records(f"SELECT {self._SESSION_COLUMNS} FROM sessions WHERE id = ?", [sid])
        return found[0] if found else None

    def session_for_snapshot(self, snapshot_id_prefix: str) -> SessionRecord | None:
        """The session that wrote the snapshot whose id starts with the given hex prefix.

        ``UsageError`` when the prefix is not hex or matches sessions of several snapshots.
        """
        prefix = snapshot_id_prefix.lower()
        if not prefix or any(c not in "0123456789abcdef" for c in prefix):
            raise UsageError(f"{snapshot_id_prefix!r} is not a snapshot id (hex digits)")
        query = f"SELECT {self._SESSION_COLUMNS} FROM sessions WHERE snapshot_id LIKE ? ORDER BY id"
        found = self._records(query, [prefix + "%"])
        if len({r.snapshot_id for r in found}) > 1:
            raise UsageError(f"snapshot id prefix {snapshot_id_prefix!r} is ambiguous; give more digits")
        return found[-1] if found else None

    def files(self, sid: int, classes: tuple[str, ...] | None = None) -> list[FileRecord]:
        """Files recorded for session ``sid`` in the order recorded, optionally of some classes."""
        query = (
            "SELECT session_id, path, path_raw, class, reason, message, attempts, writers, detail,"
            " recorded FROM files WHERE session_id = ?"
        )
        params: list[Any] = [sid]
        if classes:
            query += f" AND class IN ({', '.join('?' * len(classes))})"
            params.extend(classes)
        with self._lock:
            self.flush()
            rows = self._db.execute(query + " ORDER BY id", params).fetchall()
        return [
            FileRecord(
                session_id=r[0],
                path=r[1],
                path_bytes=bytes(r[2]),
                classification=r[3],
                reason=r[4],
                message=r[5],
                attempts=r[6],
                writers=json.loads(r[7]),
                detail=json.loads(r[8]),
                recorded=datetime.fromtimestamp(r[9], UTC),
            )
            for r in rows
        ]

    def dumps(self, sid: int) -> list[FileRecord]:
        """The database dumps recorded for session ``sid`` (any class; see engine.hotbackup)."""
        return [f for f in self.files(sid) if f.reason in DUMP_REASONS]

    def _records(self, query: str, params: list[Any]) -> list[SessionRecord]:
        boot_id = read_boot_id()
        result: list[SessionRecord] = []
        with self._lock:
            self.flush()
            rows = self._db.execute(query, params).fetchall()
            for r in rows:
                status: SessionStatus = r[8]
                owner = ProcessIdentity(r[3], r[4], r[5])
                if status == "running" and is_stale(owner, boot_id, process_start_ticks):
                    status = "interrupted"
                if r[11] is None:
                    # Not finished: count what was recorded (ok files only appear in detailed logs).
                    counted = dict(
                        self._db.execute(
                            "SELECT class, COUNT(*) FROM files WHERE session_id = ? GROUP BY class", (r[0],)
                        ).fetchall()
                    )
                    counts = {c: int(counted.get(c, 0)) for c in _CLASSES}
                else:
                    counts = dict(zip(_CLASSES, (r[11], r[12], r[13]), strict=True))
                warnings = [
                    w[0]
                    for w in self._db.execute(
                        "SELECT message FROM warnings WHERE session_id = ? ORDER BY id", (r[0],)
                    ).fetchall()
                ]
                started = _when(r[6])
                assert started is not None
                record = SessionRecord(
                    id=r[0],
                    set_name=r[1],
                    host=r[2],
                    pid=r[3],
                    started=started,
                    ended=_when(r[7]),
                    status=status,
                    bytes_read=r[9],
                    bytes_added=r[10],
                    counts=counts,
                    snapshot_id=r[14],
                    exit_code=r[15],
                    warnings=warnings,
                    repository=r[16],
                )
                result.append(record)
        return result


class _Tx:
    """BEGIN IMMEDIATE … COMMIT (ROLLBACK on error) on an autocommit connection."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        # A signal between BEGIN and COMMIT would leave the transaction open for the session's
        # closing write; it is delivered once the transaction has ended.
        self._held = interrupts.held()
        self._held.__enter__()
        # IMMEDIATE takes the write lock up front, so a concurrent writer waits in busy_timeout
        # instead of failing half-way through the transaction.
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except BaseException:
            self._held.__exit__(None, None, None)
            raise

    def __exit__(self, exc_type: object, *rest: object) -> None:
        try:
            self._db.execute("ROLLBACK" if exc_type is not None else "COMMIT")
        finally:
            self._held.__exit__(None, None, None)
