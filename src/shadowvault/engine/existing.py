"""Does an entry already on disk match a snapshot node? (restore's "unchanged" test)

restic's rule for ``restore --overwrite if-changed``: same type, and for a regular file the same
size and modification time; with ``--verify`` the content itself is compared, by hashing the file
in the lengths of its blobs (a data blob's id is the SHA-256 of its plaintext), so no blob has to
be read from the repository.
"""

from __future__ import annotations

import hashlib
import os
import stat

from shadowvault.repo import BlobType, Node

from .ports import RestoreRepo


def existing_matches(repo: RestoreRepo, path: bytes, node: Node, *, verify: bool) -> bool:
    """Whether the entry at ``path`` already is what ``node`` describes (False when unreadable)."""
    try:
        st = os.lstat(path)
        if node.type == "file":
            if not stat.S_ISREG(st.st_mode) or st.st_size != node.size:
                return False
            return same_content(repo, path, node) if verify else st.st_mtime_ns == node.mtime
        if node.type == "symlink":
            return stat.S_ISLNK(st.st_mode) and os.readlink(path) == os.fsencode(node.linktarget)
        if node.type == "fifo":
            return stat.S_ISFIFO(st.st_mode)
        if node.type in ("dev", "chardev"):
            kind = stat.S_ISCHR if node.type == "chardev" else stat.S_ISBLK
            return kind(st.st_mode) and st.st_rdev == node.device
    except OSError:
        return False
    return False


def same_content(repo: RestoreRepo, path: bytes, node: Node) -> bool:
    """The file's bytes hash to the node's blob ids, blob by blob, with nothing after the last."""
    with open(path, "rb") as f:
        for blob_id in node.content or []:
            length = repo.blob_length(BlobType.DATA, blob_id)
            if hashlib.sha256(f.read(length)).digest() != blob_id:
                return False
        return f.read(1) == b""
