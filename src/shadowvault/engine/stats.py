"""``stats``: how big snapshots are, counted as restic counts them.

* ``restore-size`` (restic's default): every node of every selected snapshot is a file counted in
  ``total_file_count``; ``total_size`` adds each node's size, a hard-linked inode once per snapshot.
* ``raw-data``: the distinct blobs (data and tree) the snapshots reference, as stored in packs
  (compressed and encrypted): ``total_size`` is their stored length, ``total_blob_count`` their
  number, and ``total_uncompressed_size`` their plaintext length.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from shadowvault.errors import RepoError
from shadowvault.repo import BlobType, Repository, Snapshot

from .treewalk import walk

MODES: tuple[str, ...] = ("restore-size", "raw-data")


@dataclass(frozen=True)
class Stats:
    """restic's ``stats --json`` fields (``total_blob_count`` only in raw-data mode)."""

    mode: str
    total_size: int
    total_file_count: int
    snapshots_count: int
    total_blob_count: int = 0
    total_uncompressed_size: int = 0


def restore_size(repo: Repository, snaps: Sequence[Snapshot]) -> Stats:
    """Bytes and entries a restore of each snapshot would write."""
    size = files = 0
    for snap in snaps:
        seen: set[tuple[int, int]] = set()
        for _, node in walk(repo, snap.tree):
            files += 1
            if node.inode:
                key = (node.inode, node.device_id)
                if key in seen:
                    continue
                seen.add(key)
            size += node.size
    return Stats("restore-size", size, files, len(snaps))


def raw_data(repo: Repository, snaps: Sequence[Snapshot]) -> Stats:
    """Stored size of the distinct blobs the snapshots reference."""
    blobs: set[tuple[BlobType, bytes]] = set()
    pending = [s.tree for s in snaps]
    while pending:
        tree_id = pending.pop()
        if (BlobType.TREE, tree_id) in blobs:
            continue
        blobs.add((BlobType.TREE, tree_id))
        for node in repo.load_tree(tree_id).nodes:
            if node.type == "dir" and node.subtree is not None:
                pending.append(node.subtree)
            for blob_id in node.content or []:
                blobs.add((BlobType.DATA, blob_id))
    stored = plain = 0
    for kind, blob_id in blobs:
        loc = repo.pack_location(kind, blob_id)
        if loc is None:
            raise RepoError(f"{kind.value} blob {blob_id.hex()[:8]} is not in the index: run `check`")
        stored += loc[1].length
        plain += loc[1].plaintext_length
    return Stats("raw-data", stored, 0, len(snaps), len(blobs), plain)
