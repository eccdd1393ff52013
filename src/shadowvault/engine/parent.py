"""The parent snapshot of a backup, chosen among snapshots whose trees this session can read.

Several clients may back up into one repository at once (restic's shared locks). A session
loads the index while its lock settles, and a snapshot another session finished a moment later
is listed although its index file was not there yet when ours was read: picking it as parent
then fails on its first tree ("not in the index"), which reads like damage and is none. So the
choice re-reads the index when the newest candidate's tree is missing, and passes over a
snapshot whose tree is still not indexed (its writer cannot have finished in that order, so it
is damaged or half-pruned) with a warning instead of failing the backup.
"""

from __future__ import annotations

from collections.abc import Callable

from shadowvault.errors import RepoError
from shadowvault.repo import BlobType, Snapshot

from .ports import BackupRepo

__all__ = ["choose_parent", "indexed_tree"]


def indexed_tree(repo: BackupRepo, tree_id: bytes) -> bool:
    """True when ``tree_id`` is in the index, re-reading index files written since it was loaded."""
    if repo.has_blob(BlobType.TREE, tree_id):
        return True
    repo.load_index()  # only the index files not loaded yet are read
    return repo.has_blob(BlobType.TREE, tree_id)


def choose_parent(
    repo: BackupRepo,
    *,
    host: str,
    sources: list[str],
    ref: str | None,
    warn: Callable[[str], None],
) -> tuple[str | None, bytes | None]:
    """(snapshot id, root tree) of the parent, or (None, None) when there is none to use.

    ``ref`` (``--parent``) must be readable: a RepoError says what is wrong with it. Otherwise the
    newest snapshot of ``host`` with exactly ``sources`` whose tree is indexed.
    """
    if ref:
        sid, snap = repo.find_snapshot(ref)
        if not indexed_tree(repo, snap.tree):
            raise RepoError(
                f"parent snapshot {sid[:8]}'s tree {snap.tree.hex()[:8]} is in no index file of "
                f"{repo.location()}: run `shadowvault check`, or back up without --parent"
            )
        return sid, snap.tree
    candidates: list[tuple[str, Snapshot]] = [
        (sid, s) for sid, s in repo.list_snapshots() if s.hostname == host and sorted(s.paths) == sources
    ]
    for sid, snap in sorted(candidates, key=lambda c: c[1].time, reverse=True):
        if indexed_tree(repo, snap.tree):
            return sid, snap.tree
        warn(
            f"snapshot {sid[:8]} is not used as parent: its tree is in no index file "
            "(run `shadowvault check`); comparing with an older one"
        )
    return None, None
