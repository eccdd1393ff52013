"""Reading snapshot trees: a depth-first walk, restic's diff of two trees, and ``find``.

The walk yields ``(path, node)`` with absolute paths as stored ("/etc/hosts"); every command that
browses a snapshot (ls, find, diff, stats, dump, mount) reads trees through these functions.
``diff_trees`` follows ``restic diff``: ``+`` added, ``-`` removed, ``T`` type changed, ``M``
content changed, ``U`` metadata changed (only when asked, as restic's ``--metadata``); directories
are printed with a trailing slash and everything below an added or removed directory is listed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from shadowvault.fs import ExcludeMatcher
from shadowvault.repo import Node, Repository


def walk(repo: Repository, tree_id: bytes | None, prefix: str = "") -> Iterator[tuple[str, Node]]:
    """Depth-first (path, node) pairs below a tree, parents before their children."""
    if tree_id is None:
        return
    for node in repo.load_tree(tree_id).nodes:
        path = f"{prefix}/{node.name}"
        yield path, node
        if node.type == "dir":
            yield from walk(repo, node.subtree, path)


@dataclass(frozen=True)
class Change:
    """One line of ``diff``: restic's modifier letters and the path (directories end in /)."""

    modifier: str
    path: str


@dataclass
class DiffCounts:
    """The totals restic prints after the changes."""

    files_added: int = 0
    files_removed: int = 0
    files_changed: int = 0
    dirs_added: int = 0
    dirs_removed: int = 0
    others_added: int = 0
    others_removed: int = 0
    changes: list[Change] = field(default_factory=list)


def _shown(path: str, node: Node) -> str:
    return path + "/" if node.type == "dir" else path


def _same_metadata(a: Node, b: Node) -> bool:
    # The node's own fields apart from content/subtree, which the diff looks at separately.
    keys = ("mode", "mtime", "uid", "gid", "user", "group", "size", "linktarget", "device")
    if any(getattr(a, k) != getattr(b, k) for k in keys):
        return False
    return list(a.extended_attributes) == list(b.extended_attributes)


def diff_trees(repo: Repository, a: bytes | None, b: bytes | None, *, metadata: bool = False) -> DiffCounts:
    """The changes from tree ``a`` to tree ``b`` in path order."""
    counts = DiffCounts()
    _diff(repo, a, b, "", counts, metadata)
    return counts


def _count(counts: DiffCounts, node: Node, added: bool) -> None:
    kind = "files" if node.type == "file" else "dirs" if node.type == "dir" else "others"
    name = f"{kind}_{'added' if added else 'removed'}"
    setattr(counts, name, getattr(counts, name) + 1)


def _one_side(repo: Repository, path: str, node: Node, mark: str, counts: DiffCounts) -> None:
    counts.changes.append(Change(mark, _shown(path, node)))
    _count(counts, node, mark == "+")
    if node.type == "dir":
        for sub, child in walk(repo, node.subtree, path):
            counts.changes.append(Change(mark, _shown(sub, child)))
            _count(counts, child, mark == "+")


def _diff(repo: Repository, a: bytes | None, b: bytes | None, prefix: str, c: DiffCounts, md: bool) -> None:
    left = {n.name: n for n in repo.load_tree(a).nodes} if a is not None else {}
    right = {n.name: n for n in repo.load_tree(b).nodes} if b is not None else {}
    for name in sorted(left.keys() | right.keys()):
        path = f"{prefix}/{name}"
        n1, n2 = left.get(name), right.get(name)
        if n1 is None and n2 is not None:
            _one_side(repo, path, n2, "+", c)
            continue
        if n2 is None and n1 is not None:
            _one_side(repo, path, n1, "-", c)
            continue
        assert n1 is not None and n2 is not None
        mod = ""
        if n1.type != n2.type:
            mod += "T"
        if n1.type == "file" and n2.type == "file" and list(n1.content or []) != list(n2.content or []):
            mod += "M"
            c.files_changed += 1
        elif md and not _same_metadata(n1, n2):
            mod += "U"
        if mod:
            c.changes.append(Change(mod, _shown(path, n2)))
        if n1.type == "dir" and n2.type == "dir":
            if n1.subtree != n2.subtree:
                _diff(repo, n1.subtree, n2.subtree, path, c, md)
        elif n1.type == "dir":
            for sub, child in walk(repo, n1.subtree, path):
                c.changes.append(Change("-", _shown(sub, child)))
                _count(c, child, False)
        elif n2.type == "dir":
            for sub, child in walk(repo, n2.subtree, path):
                c.changes.append(Change("+", _shown(sub, child)))
                _count(c, child, True)


def find(repo: Repository, tree_id: bytes | None, patterns: list[str]) -> Iterator[tuple[str, Node]]:
    """Entries whose path matches one of ``patterns`` (the exclude syntax: ``*.conf`` matches a
    name at any depth, ``/etc/**`` is anchored, ``**`` spans directories)."""
    matcher = ExcludeMatcher(patterns)
    for path, node in walk(repo, tree_id):
        if matcher.matches(path.encode("utf-8", "surrogateescape"), node.type == "dir"):
            yield path, node
