"""Directory trees that finish out of order.

A directory's tree blob can only be written once every child is final. Files
waiting for a retry keep their directory (and its ancestors) open while the
session goes on with other files; when the last child settles the directory
is sealed, saved, and handed to its parent (restic's tree saver, with
retries in mind). Content ids arrive as futures from the blob-saving threads
and are resolved only when the directory is sealed, so reading never waits
for hashing, compression or encryption of the previous file.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import cast

from shadowvault.fs import FileMeta
from shadowvault.repo import Node, Tree

from .blobstage import BlobRef
from .nodes import equals_meta_node, node_from_meta, node_name
from .outcomes import Outcome


@dataclass
class PendingFile:
    """A file whose data is being saved: its content ids are still futures."""

    meta: FileMeta
    size: int
    chunks: Sequence[BlobRef]  # ids (small blobs, reused content) or futures of them
    outcome: Outcome | None  # stored on the node (suspect files, SQLite copies, dumps)

    def node(self) -> Node:
        """Resolve the content futures into the final node (blocks until saved)."""
        content = [c if isinstance(c, bytes) else c.result() for c in self.chunks]
        node = node_from_meta(self.meta, content=content, outcome=self.outcome)
        node.size = self.size
        return node


Slot = Node | PendingFile | None


@dataclass(eq=False)
class PendingDir:
    """A directory being built; ``pending`` counts children not final yet."""

    meta: FileMeta | None  # None for the snapshot's virtual root
    parent: PendingDir | None
    slot: int
    parent_nodes: dict[str, Node] | None
    parent_tree: bytes | None = None  # the parent snapshot's tree for this directory
    slots: list[Slot] = field(default_factory=list)
    pending: int = 0
    listed: bool = False

    def reserve(self) -> int:
        """Reserve a slot for a child that becomes final later."""
        self.slots.append(None)
        self.pending += 1
        return len(self.slots) - 1

    def add(self, value: Node | PendingFile) -> None:
        """Append a child that is already final (or only waiting for its blobs)."""
        self.slots.append(value)


class TreeBuilder:
    """Seals directories when complete and reports the root tree id."""

    def __init__(self, save_tree: Callable[[Tree], bytes]) -> None:
        self._save_tree = save_tree
        self.root_id: bytes | None = None

    def settle(self, d: PendingDir, slot: int, value: Node | PendingFile | None) -> None:
        """A reserved child became final (``None``: it is left out, e.g. a failed file)."""
        d.slots[slot] = value
        d.pending -= 1
        self.try_seal(d)

    def try_seal(self, d: PendingDir) -> None:
        """Save ``d``'s tree if it is fully listed and no child is pending, then propagate upward."""
        while d.listed and d.pending == 0:
            tree_id = _unchanged_tree(d)
            if tree_id is None:
                nodes = [s.node() if isinstance(s, PendingFile) else s for s in d.slots if s is not None]
                nodes.sort(key=lambda n: os.fsencode(n.name))
                tree_id = self._save_tree(Tree(nodes=nodes))
            parent = d.parent
            if parent is None:
                self.root_id = tree_id
                return
            assert d.meta is not None
            parent.slots[d.slot] = node_from_meta(d.meta, subtree=tree_id)
            parent.pending -= 1
            d = parent


def _unchanged_tree(d: PendingDir) -> bytes | None:
    """The parent snapshot's tree id when every node of ``d`` is identical to the parent's.

    Most directories of an incremental backup are unchanged; skipping their JSON encoding and
    hashing is most of the cost of a no-change run. Files whose content was reused are compared
    with their metadata directly, so their nodes are built only when the tree has to be written.
    """
    old = d.parent_nodes
    if d.parent_tree is None or old is None:
        return None
    count = 0
    for s in d.slots:
        if s is None:
            continue
        count += 1
        if isinstance(s, PendingFile):
            prev = old.get(node_name(s.meta.name))
            if prev is None:
                return None
            chunks = s.chunks
            if s.outcome is None and s.size == s.meta.size and all(isinstance(c, bytes) for c in chunks):
                # Reused content: ids, not futures (checked just above).
                if not equals_meta_node(prev, s.meta, content=cast("list[bytes]", chunks)):
                    return None
            elif prev != s.node():
                return None
        elif old.get(s.name) != s:
            return None
    return d.parent_tree if count == len(old) else None
