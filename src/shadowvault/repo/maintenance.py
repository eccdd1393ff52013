"""forget/prune mechanics on ids: which snapshots a retention policy keeps, and removing
unreferenced data (restic ``forget`` and ``prune``). The policy arrives as data.

Retention follows restic's rules: snapshots are grouped by host and paths;
within a group, newest first, a snapshot is kept when a rule still has budget
and the snapshot opens a new bucket for that rule (last n, hour, day, ISO week,
month, year, all within a duration of the newest, or carrying a kept tag).

Prune keeps restic's safe order: write new packs with the blobs still needed
from partly used packs, then index files for everything kept (superseding all
old ones), then delete the old index files, and only then delete packs. The
caller must hold an exclusive lock.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from shadowvault.errors import RepoError
from shadowvault.repo.backends.base import FileType
from shadowvault.repo.files.index import split_into_files
from shadowvault.repo.files.pack import PackedBlob
from shadowvault.repo.files.snapshot import Snapshot
from shadowvault.repo.ids import BlobType, short
from shadowvault.repo.index import MasterIndex
from shadowvault.repo.packer import BlobSaver
from shadowvault.repo.repository import Repository

_NS = 1_000_000_000


@dataclass(frozen=True)
class KeepPolicy:
    """How many snapshots to keep per rule; 0 means the rule is off."""

    last: int = 0
    hourly: int = 0
    daily: int = 0
    weekly: int = 0
    monthly: int = 0
    yearly: int = 0
    within_ns: int = 0
    tags: frozenset[str] = frozenset()

    def empty(self) -> bool:
        """True when no rule is set (restic then refuses to forget anything)."""
        counts = (self.last, self.hourly, self.daily, self.weekly, self.monthly, self.yearly)
        return not any(counts) and not self.within_ns and not self.tags


def _local(ns: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ns // _NS)


def _buckets() -> list[tuple[str, Callable[[dt.datetime], object]]]:
    return [
        ("hourly", lambda t: (t.year, t.month, t.day, t.hour)),
        ("daily", lambda t: (t.year, t.month, t.day)),
        ("weekly", lambda t: t.isocalendar()[:2]),
        ("monthly", lambda t: (t.year, t.month)),
        ("yearly", lambda t: t.year),
    ]


def apply_policy(
    snapshots: Sequence[tuple[str, Snapshot]], policy: KeepPolicy
) -> tuple[list[str], list[str]]:
    """Split snapshot ids into (keep, remove) per group of host + paths."""
    if policy.empty():
        return [sid for sid, _ in snapshots], []
    groups: dict[tuple[str, tuple[str, ...]], list[tuple[str, Snapshot]]] = {}
    for sid, snap in snapshots:
        groups.setdefault((snap.hostname, tuple(sorted(snap.paths))), []).append((sid, snap))
    keep: list[str] = []
    remove: list[str] = []
    for members in groups.values():
        members.sort(key=lambda item: (item[1].time, item[0]), reverse=True)
        newest = members[0][1].time
        budget = {name: getattr(policy, name) for name, _ in _buckets()}
        last_bucket: dict[str, object] = {}
        last_left = policy.last
        for sid, snap in members:
            kept = False
            if last_left > 0:
                last_left -= 1
                kept = True
            when = _local(snap.time)
            for name, bucket_of in _buckets():
                bucket = bucket_of(when)
                if budget[name] > 0 and last_bucket.get(name) != bucket:
                    last_bucket[name] = bucket
                    budget[name] -= 1
                    kept = True
            if policy.within_ns and newest - snap.time < policy.within_ns:
                kept = True
            if policy.tags and policy.tags & set(snap.tags):
                kept = True
            (keep if kept else remove).append(sid)
    return keep, remove


def forget(repo: Repository, snapshot_ids: Sequence[str]) -> None:
    """Delete snapshot files (their data stays until ``prune``)."""
    for sid in snapshot_ids:
        repo.remove_file(FileType.SNAPSHOT, sid)


@dataclass
class PruneStats:
    """What a prune did (or would do with ``dry_run``)."""

    used_blobs: int = 0
    kept_packs: int = 0
    deleted_packs: list[str] = field(default_factory=list)
    repacked_packs: list[str] = field(default_factory=list)
    new_packs: list[str] = field(default_factory=list)
    removed_index_files: list[str] = field(default_factory=list)
    freed_bytes: int = 0


def used_blobs(repo: Repository) -> set[tuple[BlobType, bytes]]:
    """Every tree and data blob reachable from a snapshot; RepoError when one is missing."""
    used: set[tuple[BlobType, bytes]] = set()
    todo = [snap.tree for _, snap in repo.list_snapshots()]
    while todo:
        tree_id = todo.pop()
        if (BlobType.TREE, tree_id) in used:
            continue
        if not repo.index.has(BlobType.TREE, tree_id):
            raise RepoError(f"tree {short(tree_id)} is missing: prune stopped, run `shadowvault check`")
        used.add((BlobType.TREE, tree_id))
        for node in repo.load_tree(tree_id).nodes:
            for blob_id in node.content or []:
                if not repo.index.has(BlobType.DATA, blob_id):
                    raise RepoError(
                        f"data blob {short(blob_id)} of {node.name!r} is missing: prune stopped, "
                        "run `shadowvault check`"
                    )
                used.add((BlobType.DATA, blob_id))
            if node.type == "dir" and node.subtree is not None:
                todo.append(node.subtree)
    return used


def _assign(repo: Repository, used: set[tuple[BlobType, bytes]]) -> dict[bytes, list[PackedBlob]]:
    """For each pack, the used blobs it must provide (one copy per blob; full packs first)."""
    packs = {pid: repo.index.pack_blobs(pid) for pid in repo.index.pack_ids()}

    def used_fraction(pid: bytes) -> float:
        blobs = packs[pid]
        return sum((b.type, b.id) in used for b in blobs) / max(len(blobs), 1)

    assigned: dict[bytes, list[PackedBlob]] = {}
    provided: set[tuple[BlobType, bytes]] = set()
    for pid in sorted(packs, key=lambda p: (-used_fraction(p), p)):
        mine = []
        for b in packs[pid]:
            k = (b.type, b.id)
            if k in used and k not in provided:
                provided.add(k)
                mine.append(b)
        assigned[pid] = mine
    return assigned


def prune(repo: Repository, *, dry_run: bool = False) -> PruneStats:
    """Remove data no snapshot references; repack partly used packs. Hold an exclusive lock."""
    repo.load_index()
    used = used_blobs(repo)
    stats = PruneStats(used_blobs=len(used))
    sizes = dict(repo.list_files(FileType.PACK))
    assigned = _assign(repo, used)
    keep: list[bytes] = []
    repack: list[bytes] = []
    delete: list[bytes] = []
    for pid, needed in assigned.items():
        total = len(repo.index.pack_blobs(pid))
        if len(needed) == total:
            keep.append(pid)
        elif needed:
            repack.append(pid)
        else:
            delete.append(pid)
    indexed = {p.hex() for p in assigned}
    unindexed = [name for name in sizes if name not in indexed]
    stats.kept_packs = len(keep)
    stats.deleted_packs = sorted([p.hex() for p in delete] + unindexed)
    stats.repacked_packs = sorted(p.hex() for p in repack)
    if dry_run:
        stats.freed_bytes = sum(sizes.get(n, 0) for n in stats.deleted_packs)
        return stats

    new_index = MasterIndex()
    saver = BlobSaver(repo.key, repo.backend, new_index, pack_size=repo.pack_size, compress=repo.version >= 2)
    for pid in repack:
        for b in assigned[pid]:
            saver.save_blob(b.type, repo.load_blob(b.type, b.id), b.id)
    saver.flush()
    new_packs = new_index.take_new_packs()
    stats.new_packs = sorted(p.hex() for p, _ in new_packs)

    old_index_files = [name for name, _ in repo.list_files(FileType.INDEX)]
    entries = [(pid, repo.index.pack_blobs(pid)) for pid in keep] + new_packs
    files = split_into_files(entries)
    if files:
        files[0].supersedes = [bytes.fromhex(n) for n in old_index_files]
    written = {repo.save_unpacked(FileType.INDEX, f.to_json()).hex() for f in files}
    for name in old_index_files:
        if name not in written:
            repo.remove_file(FileType.INDEX, name)
            stats.removed_index_files.append(name)
    for name in stats.deleted_packs + stats.repacked_packs:
        stats.freed_bytes += sizes.get(name, 0)
        repo.remove_file(FileType.PACK, name)
    repo.reset_index()
    return stats
