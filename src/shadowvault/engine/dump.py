"""``dump``: a file of a snapshot to a stream, or a directory as a tar archive (restic's layout).

A file's blobs are written one after the other as they are read, so memory stays at one blob.
A directory becomes a tar stream of everything below it, names relative to the snapshot root
without the leading slash ("etc/hosts"), directories with their metadata, symlinks as links, and
hard links as separate regular files, as ``restic dump`` writes it.
"""

from __future__ import annotations

import os
import stat
import tarfile
from typing import BinaryIO

from shadowvault.repo import BlobType, Node, Repository

from .nodes import posix_permissions
from .treewalk import walk

_TAR_TYPES = {"dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE, "fifo": tarfile.FIFOTYPE}


def write_file(repo: Repository, node: Node, out: BinaryIO) -> int:
    """Write a regular file's content to ``out``; returns the bytes written."""
    written = 0
    for blob_id in node.content or []:
        data = repo.load_blob(BlobType.DATA, blob_id)
        out.write(data)
        written += len(data)
    return written


class _BlobReader:
    """A file-like view of a node's content for tarfile (reads blob by blob)."""

    def __init__(self, repo: Repository, node: Node) -> None:
        self._blobs = iter(node.content or [])
        self._repo = repo
        self._buf = b""

    def read(self, n: int = -1) -> bytes:
        while n < 0 or len(self._buf) < n:
            blob_id = next(self._blobs, None)
            if blob_id is None:
                break
            self._buf += self._repo.load_blob(BlobType.DATA, blob_id)
        if n < 0:
            n = len(self._buf)
        data, self._buf = self._buf[:n], self._buf[n:]
        return data


def write_tar(repo: Repository, tree_id: bytes | None, prefix: str, out: BinaryIO) -> int:
    """Write everything below the directory ``prefix`` (tree ``tree_id``) as a tar stream;
    returns the number of entries."""
    count = 0
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for path, node in walk(repo, tree_id, prefix.rstrip("/")):
            info = tarfile.TarInfo(path.lstrip("/"))
            info.mode = stat.S_IMODE(posix_permissions(node.mode))
            info.mtime = node.mtime / 1e9
            info.uid, info.gid = node.uid, node.gid
            info.uname, info.gname = node.user, node.group
            if node.type == "file":
                info.size = node.size
                tar.addfile(info, _BlobReader(repo, node))
            elif node.type in _TAR_TYPES:
                info.type = _TAR_TYPES[node.type]
                info.linkname = node.linktarget
                tar.addfile(info)
            elif node.type in ("dev", "chardev"):
                info.type = tarfile.CHRTYPE if node.type == "chardev" else tarfile.BLKTYPE
                info.devmajor, info.devminor = os.major(node.device), os.minor(node.device)
                tar.addfile(info)
            else:
                continue
            count += 1
    return count
