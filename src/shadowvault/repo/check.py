"""Structural repository check, the counterpart of ``restic check [--read-data]``.

0. Index files: each must decrypt and parse (kind ``bad_index``).
1. Index against packs: every indexed pack exists, its header decrypts, the
   header's blobs add up to the file size, and every indexed blob sits in the
   header at the same place. Packs no index names (an interrupted backup leaves
   them) are only a hint, as in restic: reported as kind ``unindexed_pack``
   when ``include_hints`` is set, otherwise not at all.
2. Snapshots: every snapshot loads, and every tree reachable from one loads and
   is well formed; every data blob and subtree it references is indexed.
3. With ``read_data``: every pack is read whole, its SHA-256 must match its
   name, and every blob is decrypted, decompressed and hash-checked.

Problems are returned as values; nothing here prints.
"""

from __future__ import annotations

from dataclasses import dataclass

from shadowvault.errors import RepoError
from shadowvault.repo import crypto
from shadowvault.repo.backends.base import FileType
from shadowvault.repo.files import pack
from shadowvault.repo.files.pack import PackedBlob
from shadowvault.repo.files.tree import NODE_TYPES
from shadowvault.repo.ids import BlobType, hash_bytes, short
from shadowvault.repo.repository import Repository, decode_blob

NON_CRITICAL_KINDS = frozenset({"unindexed_pack"})


@dataclass(frozen=True)
class CheckProblem:
    """One finding. ``kind`` is a stable keyword; ids are full hex or None."""

    kind: str
    message: str
    pack_id: str | None = None
    blob_id: str | None = None

    @property
    def critical(self) -> bool:
        """False for findings restic treats as hints (unindexed packs)."""
        return self.kind not in NON_CRITICAL_KINDS


def read_pack_header(repo: Repository, pack_name: str, size: int) -> list[PackedBlob]:
    """Header entries of a stored pack (two range reads); ValueError/CiphertextError when bad."""
    trailer = repo.backend.load(FileType.PACK, pack_name, size - pack.TRAILER_SIZE, pack.TRAILER_SIZE)
    hlen = pack.header_length_from_trailer(trailer, size)
    enc = repo.backend.load(FileType.PACK, pack_name, size - pack.TRAILER_SIZE - hlen, hlen)
    return pack.open_header(repo.key, enc, size)


def _check_packs(repo: Repository, sizes: dict[str, int]) -> list[CheckProblem]:
    problems: list[CheckProblem] = []
    indexed = {p.hex() for p in repo.index.pack_ids()}
    for name in sorted(indexed):
        if name not in sizes:
            problems.append(CheckProblem("missing_pack", f"pack {name} is in the index but missing", name))
            continue
        try:
            header = read_pack_header(repo, name, sizes[name])
        except (ValueError, EOFError, OSError, crypto.CiphertextError) as exc:
            problems.append(CheckProblem("bad_pack_header", f"pack {name}: header unreadable ({exc})", name))
            continue
        in_header = {(b.type, b.id): b for b in header}
        for b in repo.index.pack_blobs(bytes.fromhex(name)):
            found = in_header.get((b.type, b.id))
            if found != b:
                problems.append(
                    CheckProblem(
                        "index_mismatch",
                        f"pack {name}: {b.type.value} blob {b.id.hex()} is indexed at {b.offset}+{b.length} "
                        f"but the pack header {'differs' if found else 'lacks it'}",
                        name,
                        b.id.hex(),
                    )
                )
    for name in sorted(set(sizes) - indexed):
        problems.append(CheckProblem("unindexed_pack", f"pack {name} is not referenced by any index", name))
    return problems


def _check_snapshots(repo: Repository) -> list[CheckProblem]:
    problems: list[CheckProblem] = []
    todo: list[bytes] = []
    for name, _ in repo.list_files(FileType.SNAPSHOT):
        try:
            snap = repo.load_snapshot(name)
        except RepoError as exc:
            problems.append(CheckProblem("bad_snapshot", f"snapshot {short(name)}: {exc}"))
            continue
        todo.append(snap.tree)
    seen: set[bytes] = set()
    while todo:
        tree_id = todo.pop()
        if tree_id in seen:
            continue
        seen.add(tree_id)
        if not repo.index.has(BlobType.TREE, tree_id):
            problems.append(
                CheckProblem(
                    "missing_tree", f"tree {tree_id.hex()} is referenced but not indexed", None, tree_id.hex()
                )
            )
            continue
        try:
            tree = repo.load_tree(tree_id)
        except RepoError as exc:
            entry = repo.index.lookup(BlobType.TREE, tree_id)
            pack_id = entry.pack_id.hex() if entry else None
            problems.append(CheckProblem("bad_tree", str(exc), pack_id, tree_id.hex()))
            continue
        for node in tree.nodes:
            where = f"tree {short(tree_id)}: node {node.name!r}"
            if not node.name:
                problems.append(
                    CheckProblem("bad_node", f"tree {short(tree_id)} has a node with an empty name")
                )
            if node.type not in NODE_TYPES:
                problems.append(CheckProblem("bad_node", f"{where} has invalid type {node.type!r}"))
            elif node.type == "file":
                if node.content is None:
                    problems.append(CheckProblem("bad_node", f"{where} is a file without a content list"))
                for blob_id in node.content or []:
                    if not repo.index.has(BlobType.DATA, blob_id):
                        problems.append(
                            CheckProblem(
                                "missing_blob",
                                f"{where}: data blob {blob_id.hex()} is not indexed",
                                None,
                                blob_id.hex(),
                            )
                        )
            elif node.type == "dir":
                if node.subtree is None:
                    problems.append(CheckProblem("bad_node", f"{where} is a directory without a subtree"))
                else:
                    todo.append(node.subtree)
    return problems


@dataclass
class CheckProgress:
    """Counters of ``read_data`` for a progress display (read from another thread)."""

    packs_total: int = 0
    bytes_total: int = 0
    packs_done: int = 0
    bytes_done: int = 0
    started: bool = False
    """The totals are known (reading has begun)."""


def _read_data(repo: Repository, sizes: dict[str, int], progress: CheckProgress) -> list[CheckProblem]:
    problems: list[CheckProblem] = []
    packs = [p for p in sorted(repo.index.pack_ids()) if p.hex() in sizes]  # missing: reported already
    progress.packs_total = len(packs)
    progress.bytes_total = sum(sizes[p.hex()] for p in packs)
    progress.started = True
    for pack_id in packs:
        name = pack_id.hex()
        progress.packs_done += 1
        progress.bytes_done += sizes[name]
        try:
            data = repo.backend.load(FileType.PACK, name)
        except OSError as exc:
            problems.append(CheckProblem("unreadable_pack", f"pack {name}: cannot read ({exc})", name))
            continue
        if hash_bytes(data) != pack_id:
            problems.append(
                CheckProblem("pack_hash", f"pack {name}: content does not match its name (SHA-256)", name)
            )
        for b in repo.index.pack_blobs(pack_id):
            stored = data[b.offset : b.offset + b.length]
            try:
                decode_blob(repo.key, stored, b, name)
            except RepoError as exc:
                problems.append(CheckProblem("bad_blob", str(exc), name, b.id.hex()))
    return problems


def check_repository(
    repo: Repository,
    *,
    read_data: bool = False,
    include_hints: bool = False,
    progress: CheckProgress | None = None,
) -> list[CheckProblem]:
    """Check index, packs, snapshots and trees (and all blob data with ``read_data``).

    An empty list means restic's ``check`` would find no errors either.
    ``include_hints`` adds non-critical findings (packs no index references).
    """
    problems: list[CheckProblem] = []
    repo.load_index(on_error=lambda name, exc: problems.append(CheckProblem("bad_index", str(exc))))
    sizes = {name: size for name, size in repo.list_files(FileType.PACK)}
    problems += _check_packs(repo, sizes)
    problems += _check_snapshots(repo)
    if read_data:
        problems += _read_data(repo, sizes, progress or CheckProgress())
    if not include_hints:
        problems = [p for p in problems if p.critical]
    return problems
