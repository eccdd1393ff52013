"""A consistent copy of a live SQLite database through SQLite itself (the online backup API).

A database in use is its file plus ``-journal`` (rollback mode) or ``-wal``/``-shm`` (WAL mode);
copying those files one by one gives a set SQLite cannot open. Instead the database is opened
read-only (``file:PATH?mode=ro``) and copied with ``sqlite3_backup_step(-1)``: one step, so the
whole copy is made inside one read transaction and is a committed state by construction. The
copy goes to a temporary file (mode 0600) in a directory the caller owns (the state directory),
which the caller streams into the repository and deletes.

Why a child process: SQLite's rollback-mode read lock is a POSIX record lock, and POSIX locks
belong to the *process*: closing any descriptor of the database file anywhere in the process
(the read-ahead thread, the open-file engine) silently drops it, letting a writer change pages
in the middle of the copy. The child opens nothing but the database, so its lock holds. The
child needs only the standard library (``sqlite3``, ``json``), so any Python 3 will do.

A busy database (a writer holds an exclusive lock) is waited for up to ``busy_timeout`` seconds
through SQLite's busy handler; then the copy fails with ``kind == "busy"`` and the caller's
retry rules apply (Python's own backup loop would otherwise retry ``SQLITE_BUSY`` forever).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "SQLITE_HEADER",
    "SqliteCopy",
    "SqliteFailure",
    "copy_database",
    "has_sqlite_header",
    "read_header",
    "remove_stale_copies",
]

#: The first 16 bytes of every SQLite 3 database file (https://sqlite.org/fileformat.html).
SQLITE_HEADER = b"SQLite format 3\x00"

_PREFIX = "sqlite-copy-"

# Runs in the child; stdlib only. argv: source, destination, busy timeout (s), quick_check (0/1).
_CHILD = r"""
import json, sqlite3, sys, time, urllib.parse
src, dest, timeout, check = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4] == "1"

def done(**kw):
    sys.stdout.write(json.dumps(kw))
    sys.stdout.flush()
    raise SystemExit(0)

class Busy(Exception):
    pass

def progress(status, remaining, total):
    # SQLITE_BUSY (5) / SQLITE_LOCKED (6) after the busy handler gave up: stop, the caller retries.
    if status in (5, 6):
        raise Busy()

try:
    s = sqlite3.connect("file:" + urllib.parse.quote(src) + "?mode=ro", uri=True, timeout=timeout,
                        isolation_level=None)
    d = sqlite3.connect(dest, isolation_level=None)
    d.execute("PRAGMA journal_mode=OFF")
    d.execute("PRAGMA synchronous=OFF")
    # Take the read lock first (waiting in the busy handler), so "held" is only the time the
    # read transaction holds writers off; the backup step then runs inside that transaction.
    w0 = time.monotonic()
    s.execute("BEGIN")
    s.execute("SELECT count(*) FROM sqlite_master").fetchone()
    t0 = time.monotonic()
    s.backup(d, pages=-1, progress=progress)
    held = time.monotonic() - t0
    s.execute("COMMIT")
    s.close()
    bad = None
    if check:
        try:
            rows = [r[0] for r in d.execute("PRAGMA quick_check").fetchall()]
        except sqlite3.DatabaseError as e:  # damage bad enough that the check itself stops
            rows = [str(e)]
        if rows != ["ok"]:
            bad = "; ".join(str(r) for r in rows[:3])
    d.close()
    if bad is not None:
        done(ok=False, kind="quick-check", message="PRAGMA quick_check of the copy failed: " + bad)
    done(ok=True, held=held, waited=t0 - w0)
except Busy:
    done(ok=False, kind="busy", message="the database stayed locked by a writer for %.1f s" % timeout)
except sqlite3.Error as e:
    name = getattr(e, "sqlite_errorname", "") or ""
    kinds = {"SQLITE_BUSY": "busy", "SQLITE_LOCKED": "busy", "SQLITE_NOTADB": "not-a-database",
             "SQLITE_CORRUPT": "corrupt", "SQLITE_CANTOPEN": "cannot-open", "SQLITE_PERM": "cannot-open",
             "SQLITE_READONLY": "cannot-open", "SQLITE_AUTH": "cannot-open"}
    kind = kinds.get("_".join(name.split("_")[:2]), "error")  # SQLITE_CANTOPEN_ISDIR -> SQLITE_CANTOPEN
    done(ok=False, kind=kind, message="%s (%s)" % (e, name or type(e).__name__))
"""


@dataclass(frozen=True)
class SqliteCopy:
    """A finished copy: the temporary file (the caller deletes it), its size, how long the read
    transaction on the live database lasted (what a rollback-mode writer may have waited for),
    and how long the copy waited for its read lock first."""

    path: Path
    size: int
    held: float
    waited: float = 0.0  # for the read lock, before the transaction began


@dataclass(frozen=True)
class SqliteFailure:
    """Why no copy was made. ``kind``: ``busy`` (retry later), ``not-a-database``, ``corrupt``,
    ``cannot-open`` (permissions, read-only places), ``quick-check`` (the copy is damaged),
    ``error`` (anything else, including a child that could not run)."""

    kind: str
    message: str

    @property
    def retryable(self) -> bool:
        """Only a busy database may be different a little later."""
        return self.kind == "busy"


def has_sqlite_header(head: bytes | memoryview) -> bool:
    """Whether the first bytes of a file are SQLite 3's header."""
    return bytes(head[: len(SQLITE_HEADER)]) == SQLITE_HEADER


def read_header(path: bytes | str) -> bytes:
    """The first 16 bytes of ``path`` (b"" when it cannot be read: then it is no database to us)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return b""
    try:
        return os.pread(fd, len(SQLITE_HEADER), 0)
    except OSError:
        return b""
    finally:
        os.close(fd)


def _interpreter() -> str | None:
    # An unprivileged run may not be allowed to execute the interpreter it was started from
    # (e.g. one installed under /root); the child needs only the standard library.
    if sys.executable and os.access(sys.executable, os.X_OK):
        return sys.executable
    return shutil.which("python3")


def copy_database(
    source: bytes | str, tmp_dir: Path, *, busy_timeout: float, quick_check: bool = False
) -> SqliteCopy | SqliteFailure:
    """Copy the live database ``source`` into a new 0600 file under ``tmp_dir``.

    Never raises for a per-database problem: those come back as :class:`SqliteFailure`.
    """
    python = _interpreter()
    if python is None:
        return SqliteFailure("error", "no Python interpreter to run the SQLite copy")
    try:
        tmp_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f"{_PREFIX}{os.getpid()}-", suffix=".db", dir=tmp_dir)
    except OSError as e:
        return SqliteFailure("error", f"cannot create a temporary file in {tmp_dir}: {e.strerror}")
    os.close(fd)
    dest = Path(name)
    keep = False
    try:
        args = [python, "-I", "-S", "-c", _CHILD, os.fsdecode(source), name, str(busy_timeout)]
        try:
            proc = subprocess.run(
                [*args, "1" if quick_check else "0"],
                capture_output=True,
                text=True,
                timeout=busy_timeout + 3600,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            return SqliteFailure("error", f"the SQLite copy did not run: {e}")
        try:
            result = json.loads(proc.stdout)
        except ValueError:
            tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            return SqliteFailure("error", f"the SQLite copy failed: {tail}")
        if not result.get("ok"):
            return SqliteFailure(str(result.get("kind", "error")), str(result.get("message", "")))
        keep = True
        held, waited = float(result.get("held", 0.0)), float(result.get("waited", 0.0))
        return SqliteCopy(dest, dest.stat().st_size, held, waited)
    finally:
        if not keep:
            dest.unlink(missing_ok=True)


def remove_stale_copies(tmp_dir: Path) -> list[Path]:
    """Delete copies left by sessions whose process is gone (a crash mid-copy); returns them."""
    removed: list[Path] = []
    try:
        names = os.listdir(tmp_dir)
    except OSError:
        return removed
    for name in names:
        if not name.startswith(_PREFIX):
            continue
        pid_text = name[len(_PREFIX) :].split("-", 1)[0]
        if not pid_text.isdigit() or _alive(int(pid_text)):
            continue
        path = tmp_dir / name
        try:
            path.unlink()
            removed.append(path)
        except OSError:
            pass
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
