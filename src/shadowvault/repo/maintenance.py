"""forget and prune mechanics on ids (restic ``forget`` and ``prune``); which snapshots to
forget is decided in ``policy``.

Prune plans first, then acts in restic's safe order, so a kill at any moment loses nothing a
snapshot references:

1. mark every blob reachable from a snapshot (one pass over the trees);
2. classify packs: fully used ones stay, unused ones go, partly used ones are repacked
   while the unused share of the repository is above ``max_unused_percent`` (most wasteful
   first, within ``max_repack_bytes``); with ``repack_small`` small packs are merged too.
   A blob stored twice is provided by the pack that is used most;
3. copy the still-used blobs of repacked packs into new packs (killed here: the new packs
   are unindexed, the next prune removes them);
4. write index files for every kept and new pack, superseding all old index files;
5. delete the old index files, then the unused, repacked and unindexed packs (killed
   here: what is left is unindexed and removed by the next prune).

The caller holds an exclusive lock. Memory: besides the master index, the set of used blob
ids, a small record per pack, and the blob lists of partly used packs only; index files are
written one at a time.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from shadowvault.errors import RepoError
from shadowvault.repo.backends.base import FileType
from shadowvault.repo.files.index import MAX_INDEX_JSON, IndexFile
from shadowvault.repo.files.pack import PackedBlob, header_size
from shadowvault.repo.ids import BlobType, short
from shadowvault.repo.index import MasterIndex
from shadowvault.repo.packer import BlobSaver
from shadowvault.repo.repository import Repository
from shadowvault.repo.tempfiles import remove_stale_temp_files

SMALL_PACK_SHARE = 0.8
"""With ``repack_small``, packs below this share of the target pack size are merged (as restic)."""

PruneProgress = Callable[[str, int, int], None]
"""Called with (phase, done, total) as prune advances; phases in ``PHASES``."""

PHASES = ("snapshots", "packs", "repack", "index", "delete")


def forget(repo: Repository, snapshot_ids: Iterable[str]) -> None:
    """Delete snapshot files (their data stays until ``prune``)."""
    for sid in snapshot_ids:
        repo.remove_file(FileType.SNAPSHOT, sid)


@dataclass(frozen=True)
class PruneOptions:
    """How much to repack; ``max_repack_bytes`` None means no limit."""

    max_unused_percent: float = 5.0
    max_repack_bytes: int | None = None
    repack_small: bool = False
    dry_run: bool = False


@dataclass
class PruneStats:
    """What a prune did (or would do with ``dry_run``); sizes are stored bytes."""

    snapshots: int = 0
    used_blobs: int = 0
    used_bytes: int = 0
    unused_bytes: int = 0
    """Unused blob bytes in indexed packs before the prune."""
    unused_after: int = 0
    kept_packs: int = 0
    deleted_packs: list[str] = field(default_factory=list)
    """Indexed packs no snapshot uses any more."""
    unindexed_packs: list[str] = field(default_factory=list)
    """Packs no index names (left by interrupted backups or prunes)."""
    repacked_packs: list[str] = field(default_factory=list)
    repack_bytes: int = 0
    new_packs: list[str] = field(default_factory=list)
    written_bytes: int = 0
    removed_index_files: list[str] = field(default_factory=list)
    written_index_files: int = 0
    stale_locks_removed: list[str] = field(default_factory=list)
    """Locks of dead processes on this host (or unrefreshed for 30 min) that prune cleared."""
    freed_bytes: int = 0
    temp_files_removed: list[str] = field(default_factory=list)
    """Temporary files of interrupted writes (older than tempfiles.STALE_AGE) that prune removed."""
    """Bytes deleted minus bytes written (a dry run estimates the written part as the used
    blobs copied plus a pack header)."""


@dataclass
class _Pack:
    """Per-pack figures for the plan (no blob lists except for partly used packs)."""

    pid: bytes
    size: int
    used_bytes: int = 0
    unused_bytes: int = 0
    needed: list[PackedBlob] | None = None


def used_blobs(
    repo: Repository, skip: set[str] | None = None, on_progress: PruneProgress | None = None
) -> tuple[dict[BlobType, set[bytes]], int]:
    """Every tree and data blob reachable from a snapshot (except ``skip``); (blobs, snapshots).

    RepoError when a referenced blob is not indexed: pruning then could delete the last copy
    of something else, so nothing is done.
    """
    used: dict[BlobType, set[bytes]] = {BlobType.TREE: set(), BlobType.DATA: set()}
    trees, data = used[BlobType.TREE], used[BlobType.DATA]
    snaps = [(sid, s) for sid, s in repo.list_snapshots() if not skip or sid not in skip]
    for done, (_sid, snap) in enumerate(snaps, 1):
        todo = [snap.tree]
        while todo:
            tree_id = todo.pop()
            if tree_id in trees:
                continue
            if not repo.index.has(BlobType.TREE, tree_id):
                raise RepoError(f"tree {short(tree_id)} is missing: prune stopped, run `shadowvault check`")
            trees.add(tree_id)
            for node in repo.load_tree(tree_id).nodes:
                for blob_id in node.content or ():
                    if blob_id in data:
                        continue
                    if not repo.index.has(BlobType.DATA, blob_id):
                        raise RepoError(
                            f"data blob {short(blob_id)} of {node.name!r} is missing: prune stopped, "
                            "run `shadowvault check`"
                        )
                    data.add(blob_id)
                if node.type == "dir" and node.subtree is not None:
                    todo.append(node.subtree)
        if on_progress is not None:
            on_progress("snapshots", done, len(snaps))
    return used, len(snaps)


def unused_data(repo: Repository) -> tuple[int, int]:
    """(blobs, stored bytes) the index holds that no snapshot references (run on a sound repository).

    Interrupted backups leave such data (their packs are indexed at checkpoints so the next
    backup reuses them); ``prune`` gives it back.
    """
    used, _ = used_blobs(repo)
    count = size = 0
    for pid in repo.index.pack_ids():
        for b in repo.index.pack_blobs(pid):
            if b.id in used[b.type]:
                used[b.type].discard(b.id)  # a second copy elsewhere is unused
            else:
                count += 1
                size += b.length
    return count, size


@dataclass
class PrunePlan:
    """What prune will do; built without touching the repository."""

    stats: PruneStats
    keep: list[bytes]
    repack: list[_Pack]
    delete: list[tuple[str, int]]
    """Names and sizes of packs to delete besides the repacked ones (unused and unindexed)."""


def plan_prune(
    repo: Repository,
    options: PruneOptions,
    *,
    skip_snapshots: set[str] | None = None,
    on_progress: PruneProgress | None = None,
) -> PrunePlan:
    """Decide which packs stay, go, or are repacked."""
    repo.load_index()
    used, n_snaps = used_blobs(repo, skip_snapshots, on_progress)
    stats = PruneStats(snapshots=n_snaps, used_blobs=sum(len(s) for s in used.values()))
    sizes = dict(repo.list_files(FileType.PACK))
    pack_ids = repo.index.pack_ids()
    missing = [p.hex() for p in pack_ids if p.hex() not in sizes]
    if missing:
        raise RepoError(
            f"{len(missing)} indexed packs are missing (e.g. {missing[0]}): prune stopped, run "
            "`shadowvault check` and repair the index with `restic repair index`"
        )
    # Pass 1: how much of each pack is used (a blob stored twice counts in both), to decide
    # which copy of a duplicate to keep: the one in the most used pack.
    share: dict[bytes, float] = {}
    for pid in pack_ids:
        blobs = repo.index.pack_blobs(pid)
        total = sum(b.length for b in blobs) or 1
        share[pid] = sum(b.length for b in blobs if b.id in used[b.type]) / total
    # Pass 2: assign each used blob to one pack; ``used`` shrinks to what is still unassigned.
    packs: list[_Pack] = []
    for done, pid in enumerate(sorted(pack_ids, key=lambda p: (-share[p], p)), 1):
        p = _Pack(pid, sizes[pid.hex()])
        mine: list[PackedBlob] = []
        for b in repo.index.pack_blobs(pid):
            wanted = used[b.type]
            if b.id in wanted:
                wanted.discard(b.id)
                p.used_bytes += b.length
                mine.append(b)
            else:
                p.unused_bytes += b.length
        if p.used_bytes and p.unused_bytes:
            p.needed = mine
        packs.append(p)
        if on_progress is not None:
            on_progress("packs", done, len(pack_ids))
    stats.used_bytes = sum(p.used_bytes for p in packs)
    stats.unused_bytes = sum(p.unused_bytes for p in packs)
    indexed = {p.hex() for p in pack_ids}
    stats.unindexed_packs = sorted(n for n in sizes if n not in indexed)
    stats.deleted_packs = sorted(p.pid.hex() for p in packs if not p.used_bytes)
    partly = [p for p in packs if p.needed is not None]
    repack = _choose_repack(partly, stats.used_bytes, options)
    if options.repack_small:
        repack += _choose_small(repo, packs, repack, options, sum(p.size for p in repack))
    chosen = {p.pid for p in repack}
    stats.repacked_packs = sorted(p.pid.hex() for p in repack)
    stats.repack_bytes = sum(p.size for p in repack)
    keep = [p.pid for p in packs if p.used_bytes and p.pid not in chosen]
    stats.kept_packs = len(keep)
    stats.unused_after = sum(p.unused_bytes for p in packs if p.used_bytes and p.pid not in chosen)
    delete = [(n, sizes[n]) for n in stats.deleted_packs + stats.unindexed_packs]
    copied = sum(p.used_bytes for p in repack)
    removed = sum(size for _, size in delete) + stats.repack_bytes
    stats.freed_bytes = removed - (copied + (header_size([]) if repack else 0))
    return PrunePlan(stats, keep, repack, delete)


def _choose_repack(partly: list[_Pack], used_bytes: int, options: PruneOptions) -> list[_Pack]:
    """Most wasteful packs first, until the unused share is at most ``max_unused_percent``."""
    pct = options.max_unused_percent
    allowed = float("inf") if pct >= 100 else used_bytes * pct / (100 - pct)
    remaining = sum(p.unused_bytes for p in partly)
    chosen: list[_Pack] = []
    budget = options.max_repack_bytes
    spent = 0
    for p in sorted(partly, key=lambda p: (-p.unused_bytes / p.size, p.pid)):
        if remaining <= allowed:
            break
        if budget is not None and spent + p.size > budget:
            continue
        chosen.append(p)
        spent += p.size
        remaining -= p.unused_bytes
    return chosen


def _choose_small(
    repo: Repository, packs: list[_Pack], already: list[_Pack], options: PruneOptions, spent: int
) -> list[_Pack]:
    """Small packs merged into full ones: only worth it when there are at least two."""
    taken = {p.pid for p in already}
    limit = repo.pack_size * SMALL_PACK_SHARE
    small = [p for p in packs if p.used_bytes and p.pid not in taken and p.size < limit]
    if len(small) + sum(p.size < limit for p in already) < 2:
        return []
    chosen = []
    budget = options.max_repack_bytes
    for p in sorted(small, key=lambda p: (p.size, p.pid)):
        if budget is not None and spent + p.size > budget:
            continue
        if p.needed is None:
            p.needed = repo.index.pack_blobs(p.pid)
        chosen.append(p)
        spent += p.size
    return chosen


def _index_files(
    entries: Iterable[tuple[bytes, Sequence[PackedBlob]]], supersedes: list[bytes]
) -> Iterator[IndexFile]:
    """Index files of at most ``MAX_INDEX_JSON`` built one at a time (never the whole index)."""
    current = IndexFile(supersedes=list(supersedes))
    size = 0
    for pid, blobs in entries:
        piece = len(IndexFile([(pid, list(blobs))]).to_json()) + 1
        if current.packs and size + piece > MAX_INDEX_JSON:
            yield current
            current = IndexFile()
            size = 0
        current.packs.append((pid, list(blobs)))
        size += piece
    if current.packs or current.supersedes:
        yield current


def execute_prune(repo: Repository, plan: PrunePlan, on_progress: PruneProgress | None = None) -> PruneStats:
    """Carry out a plan (see the module docstring for the order)."""
    stats = plan.stats
    new_index = MasterIndex()
    written: list[int] = [0]

    def saved(_pid: bytes, blobs: list[PackedBlob]) -> None:
        written[0] += sum(b.length for b in blobs) + header_size(blobs)

    saver = BlobSaver(
        repo.key,
        repo.backend,
        new_index,
        pack_size=repo.pack_size,
        compress=repo.version >= 2,
        on_pack_saved=saved,
    )
    try:
        for done, p in enumerate(plan.repack, 1):
            for b, plain in repo.load_pack_blobs(p.pid.hex(), p.needed or []):
                saver.save_blob(b.type, plain, b.id)
            if on_progress is not None:
                on_progress("repack", done, len(plan.repack))
        saver.flush()
    finally:
        saver.close()
    new_packs = new_index.take_new_packs()
    stats.new_packs = sorted(p.hex() for p, _ in new_packs)
    stats.written_bytes = written[0]

    # Packs that only leave the index (unused or repacked) need a new index; unindexed packs do
    # not, so a prune that only removes those leaves the index files alone.
    reindex = bool(plan.repack or stats.deleted_packs)
    old_index = [name for name, _ in repo.list_files(FileType.INDEX)] if reindex else []
    written_names: set[str] = set()

    def all_entries() -> Iterator[tuple[bytes, Sequence[PackedBlob]]]:
        for pid in plan.keep:
            yield pid, repo.index.pack_blobs(pid)
        yield from new_packs

    for f in _index_files(all_entries(), [bytes.fromhex(n) for n in old_index]) if reindex else ():
        written_names.add(repo.save_unpacked(FileType.INDEX, f.to_json()).hex())
        stats.written_index_files += 1
        if on_progress is not None:
            on_progress("index", stats.written_index_files, 0)
    # Only now, with every kept blob indexed by the new files, may anything be deleted.
    doomed = [(FileType.INDEX, n) for n in old_index if n not in written_names]
    doomed += [(FileType.PACK, n) for n, _ in plan.delete] + [
        (FileType.PACK, n) for n in stats.repacked_packs
    ]
    for done, (ft, name) in enumerate(doomed, 1):
        with contextlib.suppress(FileNotFoundError):  # an interrupted prune got here first
            repo.remove_file(ft, name)
        if ft is FileType.INDEX:
            stats.removed_index_files.append(name)
        if on_progress is not None:
            on_progress("delete", done, len(doomed))
    # Leftovers of killed writers: safe to remove under the exclusive lock this prune holds.
    stats.temp_files_removed = [t.path for t in remove_stale_temp_files(repo)]
    stats.freed_bytes = sum(size for _, size in plan.delete) + stats.repack_bytes - stats.written_bytes
    repo.reset_index()
    return stats


def prune(
    repo: Repository,
    options: PruneOptions | None = None,
    *,
    on_progress: PruneProgress | None = None,
    assume_forgotten: set[str] | None = None,
) -> PruneStats:
    """Plan and (unless ``options.dry_run``) carry out a prune. Hold an exclusive lock.

    ``assume_forgotten``: snapshots to treat as already gone (a dry run of ``forget --prune``).
    """
    opts = options or PruneOptions()
    plan = plan_prune(repo, opts, skip_snapshots=assume_forgotten, on_progress=on_progress)
    if opts.dry_run:
        return plan.stats
    stats = execute_prune(repo, plan, on_progress)
    # Locks left by killed processes (a backup or prune killed mid-run) go too, so restic, which
    # honours every lock until `restic unlock`, can use the repository again.
    stats.stale_locks_removed = repo.remove_stale_locks()
    return stats
