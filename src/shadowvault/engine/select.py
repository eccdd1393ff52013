"""Which snapshot a command means: ``latest``, an id or prefix, filters, and ``SNAPSHOT:subpath``.

One function, :func:`select_snapshot`, serves every command that reads a snapshot (restore, ls,
report, diff, dump, find, stats, mount), so ``latest`` means the same thing everywhere: the newest
snapshot among those the filters let through. The filters follow restic's rules:

* ``--host H`` (repeatable): the snapshot's host is one of them;
* ``--path P`` (repeatable): the snapshot's paths include every one of them;
* ``--tag a,b`` (repeatable): the snapshot has both ``a`` and ``b``; several ``--tag`` are
  alternatives (restic's TagLists);
* ``--set NAME`` (repeatable, shadowvault's own): the snapshot was written by that backup set.

An explicit id is not filtered (restic does the same): it names one snapshot.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from shadowvault.errors import RepoError, UsageError
from shadowvault.repo import Node, Repository, Snapshot


@dataclass(frozen=True)
class SnapshotFilter:
    """Restrictions on the snapshots considered (empty: no restriction)."""

    hosts: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    tags: tuple[tuple[str, ...], ...] = ()
    sets: tuple[str, ...] = ()

    @classmethod
    def from_lists(
        cls, hosts: Sequence[str], paths: Sequence[str], tags: Sequence[str], sets: Sequence[str]
    ) -> SnapshotFilter:
        """From command-line lists: paths are made absolute, each tag option split at commas."""
        return cls(
            hosts=tuple(hosts),
            paths=tuple(os.path.normpath(os.path.abspath(p)) for p in paths),
            tags=tuple(tuple(t for t in group.split(",") if t) for group in tags),
            sets=tuple(sets),
        )

    def matches(self, snap: Snapshot) -> bool:
        """Whether ``snap`` passes every restriction."""
        if self.hosts and snap.hostname not in self.hosts:
            return False
        if self.paths and not set(self.paths) <= set(snap.paths):
            return False
        if self.tags and not any(set(group) <= set(snap.tags) for group in self.tags):
            return False
        return not self.sets or snapshot_set(snap) in self.sets

    def __bool__(self) -> bool:
        return bool(self.hosts or self.paths or self.tags or self.sets)


def snapshot_set(snap: Snapshot) -> str | None:
    """The backup set recorded in a shadowvault snapshot (None for ad-hoc runs or restic's)."""
    extra = snap.extra.get("shadowvault") if isinstance(snap.extra, dict) else None
    name = extra.get("set") if isinstance(extra, dict) else None
    return name if isinstance(name, str) and name else None


@dataclass(frozen=True)
class Selected:
    """A chosen snapshot and, for ``SNAPSHOT:subpath``, the directory or file inside it."""

    id: str
    snapshot: Snapshot
    subpath: str
    """Normalised absolute path inside the snapshot ("/" for the whole of it)."""


def split_ref(ref: str) -> tuple[str, str]:
    """``"latest:/etc"`` → ``("latest", "/etc")``; without a colon the subpath is ``"/"``."""
    name, sep, sub = ref.partition(":")
    if not name:
        raise UsageError(f"{ref!r} names no snapshot: write latest, an id, or ID:/path")
    return name, os.path.normpath("/" + sub.strip("/")) if sep and sub.strip("/") else "/"


def list_snapshots(repo: Repository, filt: SnapshotFilter) -> list[tuple[str, Snapshot]]:
    """The snapshots ``filt`` lets through, oldest first."""
    return [(sid, s) for sid, s in repo.list_snapshots() if filt.matches(s)]


def select_snapshot(repo: Repository, ref: str, filt: SnapshotFilter = SnapshotFilter()) -> Selected:
    """Resolve ``ref`` (``latest``, an id or unique prefix, optionally ``:subpath``) under ``filt``."""
    name, sub = split_ref(ref)
    if name == "latest":
        snaps = list_snapshots(repo, filt)
        if not snaps:
            if filt:
                raise RepoError("no snapshot matches the given --host/--path/--tag/--set: see `snapshots`")
            raise RepoError(f"the repository at {repo.location()} has no snapshots yet: run a backup first")
        sid, snap = max(snaps, key=lambda item: item[1].time)
    else:
        sid, snap = repo.find_snapshot(name)
    return Selected(sid, snap, sub)


def find_node(repo: Repository, tree_id: bytes | None, path: str) -> Node | None:
    """The node at absolute ``path`` below the tree ``tree_id`` (None if there is none)."""
    node: Node | None = None
    for name in [p for p in path.split("/") if p]:
        if tree_id is None:
            return None
        node = next((n for n in repo.load_tree(tree_id).nodes if n.name == name), None)
        if node is None:
            return None
        tree_id = node.subtree if node.type == "dir" else None
    return node


def subtree(repo: Repository, selected: Selected) -> bytes | None:
    """The tree id of the selected directory (the snapshot's root tree for "/").

    UsageError when the subpath does not exist or is not a directory.
    """
    if selected.subpath == "/":
        return selected.snapshot.tree
    node = find_node(repo, selected.snapshot.tree, selected.subpath)
    short = selected.id[:8]
    if node is None:
        raise UsageError(f"{selected.subpath} is not in snapshot {short}: see `ls {short}`")
    if node.type != "dir":
        raise UsageError(f"{selected.subpath} in snapshot {short} is a {node.type}, not a directory")
    return node.subtree
