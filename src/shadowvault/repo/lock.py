"""restic lock files (``locks/<id>``): who is using the repository, refreshed while in use.

Many non-exclusive locks may coexist; an exclusive lock excludes every other
lock. A lock is stale when its time is more than 30 minutes old (holders
refresh every 5 minutes by writing a new lock file and removing the old one), or
when it was made on this host by a process that no longer exists. Stale locks
are ignored when checking for conflicts. After writing its lock a client waits
briefly and checks again, so two clients racing for an exclusive lock cannot
both win.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

from shadowvault import interrupts
from shadowvault.errors import RepoError, RepoLockedError
from shadowvault.repo.backends.base import FileType
from shadowvault.repo.files import jsonfmt
from shadowvault.repo.ids import short

STALE_AFTER_NS = 30 * 60 * 1_000_000_000
REFRESH_INTERVAL_S = 5 * 60.0
RECHECK_DELAY_S = 0.2


class LockStore(Protocol):
    """What locking needs from a repository: encrypted unpacked files of type LOCK."""

    def save_unpacked(self, ft: FileType, json_bytes: bytes) -> bytes:
        """Encrypt and store; returns the new file's id."""
        ...

    def load_unpacked(self, ft: FileType, name: str) -> bytes:
        """Load and decrypt a file's JSON."""
        ...

    def list_files(self, ft: FileType) -> Iterator[tuple[str, int]]:
        """Names and sizes of the files of one type."""
        ...

    def remove_file(self, ft: FileType, name: str) -> None:
        """Delete a file."""
        ...

    def location(self) -> str:
        """Where the repository is, for messages."""
        ...


@dataclass(frozen=True)
class LockInfo:
    """Contents of a lock file (``time`` in ns since the epoch)."""

    time: int
    exclusive: bool
    hostname: str
    username: str
    pid: int
    uid: int = 0
    gid: int = 0

    @classmethod
    def for_this_process(cls, exclusive: bool) -> LockInfo:
        """A lock describing the calling process now."""
        try:
            user = getpass.getuser()
        except (KeyError, OSError):
            user = ""
        return cls(
            jsonfmt.now_ns(), exclusive, socket.gethostname(), user, os.getpid(), os.getuid(), os.getgid()
        )

    def to_json(self) -> bytes:
        """JSON in restic's field order."""
        doc: dict[str, object] = {
            "time": jsonfmt.format_time(self.time),
            "exclusive": self.exclusive,
            "hostname": self.hostname,
            "username": self.username,
            "pid": self.pid,
        }
        if self.uid:
            doc["uid"] = self.uid
        if self.gid:
            doc["gid"] = self.gid
        return jsonfmt.dumps(doc)

    @classmethod
    def from_json(cls, raw: bytes) -> LockInfo:
        """Parse a lock; ``ValueError`` when malformed."""
        d = jsonfmt.loads(raw)
        if not isinstance(d, dict):
            raise ValueError("lock is not a JSON object")
        try:
            return cls(
                time=jsonfmt.parse_time(d["time"]),
                exclusive=bool(d.get("exclusive", False)),
                hostname=str(d.get("hostname", "")),
                username=str(d.get("username", "")),
                pid=int(d.get("pid", 0)),
                uid=int(d.get("uid") or 0),
                gid=int(d.get("gid") or 0),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"lock lacks a valid field: {exc}") from exc

    def describe(self) -> str:
        """``PID 12 on host by user since 2026-01-01 10:00:00``."""
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.time // 1_000_000_000))
        return f"PID {self.pid} on {self.hostname} by {self.username or '?'} since {when}"


def process_exists(pid: int) -> bool:
    """True when a process with that pid exists on this host."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_stale(info: LockInfo, *, now: int, hostname: str, alive: bool | None) -> bool:
    """restic's rule: older than 30 minutes, or from this host with a dead process.

    ``alive`` is whether ``info.pid`` runs here (only consulted for same-host locks).
    """
    if now - info.time > STALE_AFTER_NS:
        return True
    if info.hostname != hostname:
        return False
    return alive is False


def conflicts(wanted_exclusive: bool, other: LockInfo) -> bool:
    """An exclusive lock conflicts with anything; a shared one only with an exclusive lock."""
    return wanted_exclusive or other.exclusive


class RepoLock:
    """One held lock; refreshed by a background thread until ``release``."""

    def __init__(
        self,
        store: LockStore,
        exclusive: bool,
        *,
        refresh_interval: float = REFRESH_INTERVAL_S,
        recheck_delay: float = RECHECK_DELAY_S,
    ) -> None:
        self._store = store
        self.exclusive = exclusive
        self._refresh_interval = refresh_interval
        self._recheck_delay = recheck_delay
        self._mutex = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lock_id: str | None = None
        self.info: LockInfo | None = None
        self.refresh_error: BaseException | None = None

    def _own_ids(self) -> set[str]:
        return {self.lock_id} if self.lock_id else set()

    def check_others(self) -> None:
        """``RepoLockedError`` when a live lock conflicts with the one wanted."""
        here = socket.gethostname()
        now = jsonfmt.now_ns()
        own = self._own_ids()
        for name, size in list(self._store.list_files(FileType.LOCK)):
            if name in own or size == 0:
                # Empty files are left by interrupted uploads on some backends.
                continue
            try:
                other = LockInfo.from_json(self._store.load_unpacked(FileType.LOCK, name))
            except FileNotFoundError:
                continue  # removed while we looked: its holder just released it
            except (RepoError, ValueError) as exc:
                raise RepoError(
                    f"lock file locks/{short(name)} in {self._store.location()} is unreadable ({exc}): "
                    "delete it if no other backup client is running"
                ) from exc
            alive = process_exists(other.pid) if other.hostname == here else None
            if is_stale(other, now=now, hostname=here, alive=alive):
                continue
            if conflicts(self.exclusive, other):
                kind = "exclusively " if other.exclusive else ""
                raise RepoLockedError(
                    f"repository at {self._store.location()} is locked {kind}by {other.describe()} "
                    f"(lock {short(name)}): wait for it to finish, "
                    f"or delete locks/{name} if that process is gone"
                )

    def acquire(self, meanwhile: Callable[[], None] | None = None) -> None:
        """Check, write our lock, wait, check again; start the refresh thread.

        The wait (restic's: a lock written at the same moment as ours must have landed) can do
        useful work instead of sleeping: ``meanwhile`` runs during it, and only the rest of the
        delay is slept. It must only read the repository, since the lock is not confirmed yet.
        """
        self.check_others()
        self.info = LockInfo.for_this_process(self.exclusive)
        # A lock written but not remembered would outlive an interruption: keep the two together.
        with interrupts.held():
            self.lock_id = self._store.save_unpacked(FileType.LOCK, self.info.to_json()).hex()
        settled = time.monotonic() + self._recheck_delay
        try:
            if meanwhile is not None:
                meanwhile()
            left = settled - time.monotonic()
            if left > 0:
                time.sleep(left)
            self.check_others()
        except BaseException:
            self._remove_own()
            raise
        self._thread = threading.Thread(
            target=self._refresh_loop, name="shadowvault-lock-refresh", daemon=True
        )
        self._thread.start()

    def refresh(self) -> None:
        """Write a new lock file with the current time, then remove the old one."""
        with self._mutex:
            if self.lock_id is None or self.info is None:
                return
            info = LockInfo.for_this_process(self.exclusive)
            new_id = self._store.save_unpacked(FileType.LOCK, info.to_json()).hex()
            old_id, self.lock_id, self.info = self.lock_id, new_id, info
        with contextlib.suppress(FileNotFoundError):
            self._store.remove_file(FileType.LOCK, old_id)

    def _refresh_loop(self) -> None:
        while not self._stop.wait(self._refresh_interval):
            try:
                self.refresh()
                self.refresh_error = None
            except Exception as exc:
                # A failed refresh is retried next tick; the holder can see it.
                self.refresh_error = exc

    def _remove_own(self) -> None:
        with self._mutex:
            lock_id, self.lock_id = self.lock_id, None
        if lock_id is not None:
            with contextlib.suppress(FileNotFoundError):
                self._store.remove_file(FileType.LOCK, lock_id)

    def release(self) -> None:
        """Stop refreshing and delete the lock file (a signal meanwhile waits until it is gone)."""
        with interrupts.held():
            self._stop.set()
            if self._thread is not None and self._thread is not threading.current_thread():
                self._thread.join()
            self._remove_own()


def remove_stale_locks(store: LockStore) -> list[str]:
    """Delete stale lock files (restic ``unlock``); returns the removed ids."""
    here = socket.gethostname()
    now = jsonfmt.now_ns()
    removed = []
    for name, size in list(store.list_files(FileType.LOCK)):
        if size == 0:
            continue
        try:
            info = LockInfo.from_json(store.load_unpacked(FileType.LOCK, name))
        except (RepoError, ValueError, FileNotFoundError):
            continue
        alive = process_exists(info.pid) if info.hostname == here else None
        if is_stale(info, now=now, hostname=here, alive=alive):
            store.remove_file(FileType.LOCK, name)
            removed.append(name)
    return removed
