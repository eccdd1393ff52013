"""The only adapter between vocabularies: ``fs.FileMeta`` (+ outcome) → ``repo.Node`` and back.

restic stores a Go ``os.FileMode`` in ``mode``: permission bits in the low 12
bits' Go equivalents and the file type in high bits. Converting both ways lives
here so neither ``fs`` nor ``repo`` needs to know the other's vocabulary.
"""

from __future__ import annotations

import os
import stat
from typing import Any

from shadowvault.fs import FileMeta
from shadowvault.repo import Node

from .outcomes import Outcome

# Go os.FileMode bits (io/fs package).
GO_DIR = 1 << 31
GO_SYMLINK = 1 << 27
GO_DEVICE = 1 << 26
GO_NAMED_PIPE = 1 << 25
GO_SOCKET = 1 << 24
GO_SETUID = 1 << 23
GO_SETGID = 1 << 22
GO_CHAR_DEVICE = 1 << 21
GO_STICKY = 1 << 20

_TYPE_BITS = {
    "dir": GO_DIR,
    "symlink": GO_SYMLINK,
    "dev": GO_DEVICE,
    "chardev": GO_DEVICE | GO_CHAR_DEVICE,
    "fifo": GO_NAMED_PIPE,
    "socket": GO_SOCKET,
    "file": 0,
}

OUTCOME_KEY = "shadowvault"


def go_mode(st_mode: int, kind: str) -> int:
    """POSIX ``st_mode`` → Go ``os.FileMode`` as restic writes it."""
    mode = st_mode & 0o777
    if st_mode & stat.S_ISUID:
        mode |= GO_SETUID
    if st_mode & stat.S_ISGID:
        mode |= GO_SETGID
    if st_mode & stat.S_ISVTX:
        mode |= GO_STICKY
    return mode | _TYPE_BITS[kind]


def posix_permissions(go: int) -> int:
    """Go ``os.FileMode`` → the permission part of a POSIX mode (for chmod)."""
    mode = go & 0o777
    if go & GO_SETUID:
        mode |= stat.S_ISUID
    if go & GO_SETGID:
        mode |= stat.S_ISGID
    if go & GO_STICKY:
        mode |= stat.S_ISVTX
    return mode


def node_name(name: bytes) -> str:
    """File names travel as ``str`` with surrogate escapes; the repo layer encodes them losslessly."""
    return os.fsdecode(name)


def node_from_meta(
    meta: FileMeta,
    *,
    content: list[bytes] | None = None,
    subtree: bytes | None = None,
    outcome: Outcome | None = None,
) -> Node:
    """Build the restic tree node for one entry; ``outcome`` (non-ok files only) goes into an extra key."""
    is_file = meta.kind == "file"
    node = Node(
        name=node_name(meta.name),
        type=meta.kind,
        mode=go_mode(meta.mode, meta.kind),
        mtime=meta.mtime_ns,
        # restic's default (no --with-atime): the access time is stored as the modification time.
        # Every backup reads (lists, readlinks) what it saves and so moves access times, which would
        # make a second backup of an unchanged tree write new trees.
        atime=meta.mtime_ns,
        ctime=meta.ctime_ns,
        uid=meta.uid,
        gid=meta.gid,
        user=meta.user,
        group=meta.group,
        inode=meta.inode,
        device_id=meta.device,
        size=meta.size if is_file else 0,
        links=meta.nlink,
        content=(content if content is not None else []) if is_file else None,
        subtree=subtree,
        linktarget=os.fsdecode(meta.linktarget) if meta.linktarget is not None else "",
        extended_attributes=list(meta.xattrs),
        device=meta.rdev if meta.kind in ("dev", "chardev") else 0,
    )
    if outcome is not None:
        node.extra[OUTCOME_KEY] = outcome.to_json()
    return node


def node_outcome(node: Node) -> dict[str, Any] | None:
    """The stored outcome of a non-ok file, or None (ok, or written by restic)."""
    value = node.extra.get(OUTCOME_KEY)
    return value if isinstance(value, dict) else None


def unchanged(node: Node, meta: FileMeta) -> bool:
    """The entry ``meta`` is a file the parent snapshot already holds: it is not read again.

    restic's change detection: a file node with the same size, mtime, ctime and inode.
    """
    return (
        meta.kind == "file"
        and node.type == "file"
        and node.size == meta.size
        and node.mtime == meta.mtime_ns
        and node.ctime == meta.ctime_ns
        and node.inode == meta.inode
    )


def equals_meta_node(
    node: Node,
    meta: FileMeta,
    *,
    content: list[bytes] | None = None,
    subtree: bytes | None = None,
) -> bool:
    """``node_from_meta(meta, content=content, subtree=subtree) == node``, without building the node.

    An incremental backup asks this once per entry to decide whether a directory's tree is the
    parent snapshot's; comparing field by field (cheapest and likeliest to differ first) costs a
    fraction of constructing and comparing a ``Node``. It must stay in step with
    :func:`node_from_meta`, which the tests check on entries of every kind.
    """
    kind = meta.kind
    is_file = kind == "file"
    return (
        node.mtime == meta.mtime_ns
        and node.ctime == meta.ctime_ns
        and node.atime == meta.mtime_ns
        and node.inode == meta.inode
        and node.type == kind
        and node.size == (meta.size if is_file else 0)
        and node.mode == go_mode(meta.mode, kind)
        and node.uid == meta.uid
        and node.gid == meta.gid
        and node.user == meta.user
        and node.group == meta.group
        and node.device_id == meta.device
        and node.links == meta.nlink
        and node.content == ((content if content is not None else []) if is_file else None)
        and node.subtree == subtree
        and node.linktarget == (os.fsdecode(meta.linktarget) if meta.linktarget is not None else "")
        and node.extended_attributes == list(meta.xattrs)
        and node.device == (meta.rdev if kind in ("dev", "chardev") else 0)
        and node.name == os.fsdecode(meta.name)  # node_name(), without the extra call
        and node.error == ""
        and node.extra == {}
    )
