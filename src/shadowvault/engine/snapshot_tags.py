"""``tag``: change the tags of snapshots the way restic does.

A snapshot file is named by the hash of its content, so changing tags writes a new snapshot file
(with ``original`` naming the first version, kept across later edits) and then removes the old
one: at every moment at least one of the two is in the repository.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from shadowvault.errors import UsageError
from shadowvault.repo import FileType, Repository, Snapshot


def new_tags(
    current: Sequence[str], add: Sequence[str], remove: Sequence[str], set_: Sequence[str] | None
) -> list[str]:
    """The tag list after the change: ``set_`` replaces, then ``add`` appends and ``remove`` drops."""
    tags = list(set_) if set_ is not None else list(current)
    for t in add:
        if t not in tags:
            tags.append(t)
    return [t for t in tags if t not in remove]


def retag(
    repo: Repository,
    snaps: Sequence[tuple[str, Snapshot]],
    *,
    add: Sequence[str] = (),
    remove: Sequence[str] = (),
    set_: Sequence[str] | None = None,
) -> list[tuple[str, str]]:
    """Apply the change to each snapshot; returns (old id, new id) of those that changed.

    Call with an exclusive lock held (restic's ``tag`` takes one too).
    """
    if set_ is not None and (add or remove):
        raise UsageError("--set replaces all tags: it cannot be combined with --add or --remove")
    if set_ is None and not add and not remove:
        raise UsageError("tag needs --add, --remove or --set")
    changed: list[tuple[str, str]] = []
    for sid, snap in snaps:
        tags = new_tags(snap.tags, add, remove, set_)
        if tags == snap.tags:
            continue
        updated = dataclasses.replace(snap, tags=tags, original=snap.original or sid)
        new_id = repo.save_snapshot(updated)
        repo.remove_file(FileType.SNAPSHOT, sid)
        changed.append((sid, new_id))
    return changed
