"""The curated Python API: open a repository, back up, restore, list snapshots.

The command line is a thin layer over these functions (``cli/commands/backup.py``, ``restore.py``
and ``snapshots.py`` call them), so a Python caller gets the same sequence the CLI runs: the
sources' metadata read into the cache while the repository opens, a shared lock whose settling
pause is spent reading the index, then the session. Nothing here runs at import time.

    import shadowvault as sv
    repo = sv.open_repository("/srv/backup", password)
    result = sv.backup(repo, ["/home"])            # or sv.backup(repo, sv.BackupOptions(...))
    sv.restore(repo, "latest", sv.RestoreOptions(target="/tmp/r"))
    sv.list_snapshots(repo)
    repo.close()
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shadowvault.engine.events import Event, EventSink, ListSink
from shadowvault.engine.prewarm import MetadataPrewarm
from shadowvault.engine.restore import RestoreOptions, RestoreResult, RestoreSession
from shadowvault.engine.select import Selected, SnapshotFilter, select_snapshot, subtree
from shadowvault.engine.select import list_snapshots as _list_snapshots
from shadowvault.repo import DEFAULT_PACK_SIZE, Repository, Snapshot
from shadowvault.repo.backends.base import Backend
from shadowvault.repo.backends.open import open_backend
from shadowvault.repo.backends.options import BackendOptions
from shadowvault.repo.location import parse_location

if TYPE_CHECKING:
    from shadowvault.engine.backup import BackupOptions, BackupResult

__all__ = [
    "BackupOptions",
    "BackupResult",
    "Event",
    "ListSink",
    "Repository",
    "RestoreOptions",
    "RestoreResult",
    "Restored",
    "Snapshot",
    "SnapshotFilter",
    "backend_for",
    "backup",
    "backup_lock",
    "init_repository",
    "list_snapshots",
    "open_repository",
    "prewarm",
    "restore",
]

RetryReport = Callable[[str, BaseException, float], None]
_LAZY = frozenset({"BackupOptions", "BackupResult"})


def __getattr__(name: str) -> Any:
    """The backup pipeline's names, imported on first use: a restore or a listing does not load it
    (about 0.07 s of every such command's start)."""
    if name in _LAZY:
        from shadowvault.engine import backup as _backup

        return getattr(_backup, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def backend_for(location: str, *, on_retry: RetryReport | None = None) -> Backend:
    """The storage of a restic location (path, ``sftp:``, ``s3:``, ``rest:``); UsageError if malformed."""
    return open_backend(parse_location(location), BackendOptions.from_env(os.environ, retry_report=on_retry))


def open_repository(
    location: str, password: str, *, pack_size: int = DEFAULT_PACK_SIZE, on_retry: RetryReport | None = None
) -> Repository:
    """Open an existing repository (RepoNotFoundError, WrongPasswordError, RepoError). Close it after use."""
    return Repository.open(backend_for(location, on_retry=on_retry), password, pack_size=pack_size)


def init_repository(location: str, password: str) -> Repository:
    """Create a new repository at ``location`` (RepoError if one exists) and return it open."""
    return Repository.init(backend_for(location), password)


def prewarm(sources: Sequence[str]) -> MetadataPrewarm:
    """Start reading the sources' metadata into the inode cache (a daemon thread) while the
    repository is being opened; ``backup_lock`` stops it when the walk begins."""
    return MetadataPrewarm(list(sources))


@contextmanager
def backup_lock(repo: Repository, *, warm: MetadataPrewarm | None = None) -> Iterator[Repository]:
    """A shared lock for backups, the index read during the lock's settling pause (restic sleeps
    through it); ``warm`` is stopped once the lock is held (it must not compete with the walk)."""
    try:
        with repo.lock(exclusive=False, meanwhile=repo.load_index):
            if warm is not None:
                warm.stop()
            yield repo
    finally:
        if warm is not None:
            warm.stop()


def backup(
    repo: Repository,
    what: BackupOptions | Sequence[str],
    sink: EventSink | None = None,
) -> BackupResult:
    """Back up paths (or a set's ``BackupOptions``, e.g. from ``engine.sets.backup_options``)
    under a shared lock; events go to ``sink`` (default: kept in a ``ListSink``)."""
    from shadowvault.engine.backup import BackupOptions, BackupSession

    options = what if isinstance(what, BackupOptions) else BackupOptions(sources=list(what))
    with backup_lock(repo, warm=prewarm(options.sources)):
        return BackupSession(repo, options, sink if sink is not None else ListSink()).run()


@dataclass(frozen=True)
class Restored:
    """A finished restore: which snapshot, and the counts."""

    snapshot_id: str
    result: RestoreResult


def restore(
    repo: Repository,
    snapshot: str,
    options: RestoreOptions,
    sink: EventSink | None = None,
    *,
    where: SnapshotFilter | None = None,
    watch: Callable[[RestoreSession], AbstractContextManager[object]] | None = None,
) -> Restored:
    """Restore ``snapshot`` (``latest``, an id or prefix, optionally ``:subpath``, among those
    ``where`` lets through) into ``options.target``. ``watch`` wraps the restore, given the session
    (the CLI's progress display polls its counters)."""
    found: list[Selected] = []

    def look_up() -> None:  # read-only: runs in the lock's settling pause (restic sleeps through it)
        repo.load_index()
        found.append(select_snapshot(repo, snapshot, where if where is not None else SnapshotFilter()))

    with repo.lock(exclusive=False, meanwhile=look_up):
        selected = found[0]
        session = RestoreSession(repo, options, sink if sink is not None else ListSink())
        with watch(session) if watch is not None else nullcontext():
            result = session.restore_tree(subtree(repo, selected))
    return Restored(selected.id, result)


def list_snapshots(repo: Repository, where: SnapshotFilter | None = None) -> list[tuple[str, Snapshot]]:
    """``(id, Snapshot)`` of the snapshots ``where`` lets through (all by default), oldest first."""
    return _list_snapshots(repo, where if where is not None else SnapshotFilter())
