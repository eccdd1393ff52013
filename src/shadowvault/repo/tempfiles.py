"""Temporary files left in a repository by interrupted writes, and their removal.

Every file is written under a hidden temporary name in its final directory
(``data/xx/.tmp-<id>-<random>``, see ``backends.local``) and linked into place; a killed
client leaves the temporary file behind (up to a pack's size). Nothing reads them — restic and
our ``list`` skip names that start with ``.`` — so they only waste space.

Only a client that is alone in the repository may remove them: another client's upload in
progress looks exactly like a leftover. :func:`remove_stale_temp_files` therefore removes them
only when the caller holds the exclusive lock (prune) or every lock present is its own (a
backup that starts while nobody else works), and only those older than :data:`STALE_AGE`, so a
writer that took its lock just after we looked is never touched. Only this client's own naming
(``.tmp-``) is considered; restic's temporary files (``<id>-tmp-…``) are restic's to clean.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from shadowvault.repo.backends.base import FileType, innermost
from shadowvault.repo.backends.local import LocalBackend
from shadowvault.repo.repository import Repository

__all__ = ["STALE_AGE", "TEMP_PREFIX", "TempFile", "find_temp_files", "remove_stale_temp_files"]

TEMP_PREFIX = ".tmp-"
STALE_AGE = 3600.0
"""Seconds without a write after which a temporary file cannot belong to a live upload (the
slowest pack write takes minutes; a lock not refreshed for 30 minutes is already stale)."""

_DIRS = ("keys", "index", "snapshots", "locks")


@dataclass(frozen=True)
class TempFile:
    """One leftover: where it is (relative to the repository), its size and age in seconds."""

    path: str
    size: int
    age: float


def find_temp_files(repo: Repository, *, now: float | None = None) -> list[TempFile]:
    """Every temporary file of our naming in the repository (only local repositories have any
    we can see; an empty list for other backends)."""
    backend = innermost(repo.backend)  # under the retry and rate-limit wrappers
    if not isinstance(backend, LocalBackend):
        return []
    now = time.time() if now is None else now
    root = str(backend.root)
    data = os.path.join(root, "data")
    try:
        subdirs = sorted(os.path.join("data", d) for d in os.listdir(data))
    except OSError:
        subdirs = []
    found: list[TempFile] = []
    for rel in [*_DIRS, *subdirs]:
        try:
            entries = list(os.scandir(os.path.join(root, rel)))
        except OSError:
            continue
        for entry in entries:
            if not entry.name.startswith(TEMP_PREFIX):
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue  # finished or removed meanwhile
            found.append(TempFile(os.path.join(rel, entry.name), st.st_size, max(0.0, now - st.st_mtime)))
    return found


def _alone(repo: Repository) -> bool:
    """True when this process holds the exclusive lock, or no lock but its own is present."""
    if any(held.exclusive and held.lock_id for held in repo.held_locks()):
        return True
    own = {held.lock_id for held in repo.held_locks() if held.lock_id}
    return bool(own) and all(name in own for name, _ in repo.list_files(FileType.LOCK))


def remove_stale_temp_files(
    repo: Repository, *, min_age: float = STALE_AGE, now: float | None = None
) -> list[TempFile]:
    """Delete leftovers older than ``min_age`` when the caller is alone in the repository (see
    the module docstring); returns what was removed (empty when others hold locks).

    Called by ``backup`` at its start; ``prune`` (which holds the exclusive lock) calls it too.
    """
    if not _alone(repo):
        return []
    backend = innermost(repo.backend)  # under the retry and rate-limit wrappers
    if not isinstance(backend, LocalBackend):
        return []
    removed: list[TempFile] = []
    for tmp in find_temp_files(repo, now=now):
        if tmp.age < min_age:
            continue
        try:
            os.unlink(os.path.join(str(backend.root), tmp.path))
        except FileNotFoundError:
            continue
        removed.append(tmp)
    return removed
