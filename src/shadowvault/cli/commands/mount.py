"""`shadowvault mount MOUNTPOINT`: browse every snapshot as a read-only FUSE file system.

The layout and the reading are ``engine.mountfs``; this module only answers FUSE's calls
(through ``mfusepy``, ctypes bindings for libfuse 3). It runs in the foreground until the file
system is unmounted (``fusermount3 -u MOUNTPOINT``) or the command gets Ctrl-C / SIGTERM, which
unmount it.
"""

from __future__ import annotations

import argparse
import errno
import os
import stat
from typing import Any

from shadowvault.engine.mountfs import MountTree, SnapshotRoot, VirtualDir
from shadowvault.engine.nodes import posix_permissions
from shadowvault.errors import UsageError
from shadowvault.repo import Node

from ..app import App
from ..selection import add_filter_options, snapshot_filter

HELP = "mount the repository's snapshots read-only (FUSE; restic's ids/ snapshots/ hosts/ tags/ layout)"
_KIND = {
    "dir": stat.S_IFDIR,
    "symlink": stat.S_IFLNK,
    "fifo": stat.S_IFIFO,
    "chardev": stat.S_IFCHR,
    "dev": stat.S_IFBLK,
    "socket": stat.S_IFSOCK,
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The mount point and which snapshots to show."""
    p.add_argument("mountpoint", help="an existing empty directory")
    p.add_argument("--allow-other", action="store_true", help="let other users see the file system")
    add_filter_options(p)


def _operations(tree: MountTree) -> Any:
    import mfusepy

    class Operations(mfusepy.Operations):
        # An OSError's errno is what the system call returns (mfusepy's FuseOSError is one).
        use_ns = True

        def _entry(self, path: str) -> Any:
            found = tree.lookup(path)
            if found is None:
                raise OSError(errno.ENOENT, os.strerror(errno.ENOENT))
            return found

        def getattr(self, path: str, fh: Any = None) -> dict[str, Any]:
            entry = self._entry(path)
            if isinstance(entry, VirtualDir):
                return {
                    "st_mode": stat.S_IFDIR | 0o555,
                    "st_nlink": 2,
                    "st_mtime": entry.mtime,
                    "st_ctime": entry.mtime,
                    "st_atime": entry.mtime,
                }
            if isinstance(entry, str):
                return {"st_mode": stat.S_IFLNK | 0o777, "st_nlink": 1, "st_size": len(entry)}
            if isinstance(entry, SnapshotRoot):
                t = entry.snapshot.time
                return {
                    "st_mode": stat.S_IFDIR | 0o555,
                    "st_nlink": 2,
                    "st_mtime": t,
                    "st_ctime": t,
                    "st_atime": t,
                }
            node: Node = entry
            kind = _KIND.get(node.type, stat.S_IFREG)
            size = node.size if node.type == "file" else len(os.fsencode(node.linktarget))
            return {
                "st_mode": kind | stat.S_IMODE(posix_permissions(node.mode)),
                "st_nlink": max(node.links, 1),
                "st_uid": node.uid,
                "st_gid": node.gid,
                "st_size": size if node.type in ("file", "symlink") else 0,
                "st_mtime": node.mtime,
                "st_atime": node.atime,
                "st_ctime": node.ctime,
                "st_rdev": node.device,
            }

        def readdir(self, path: str, fh: Any) -> list[str]:
            self._entry(path)
            entries = tree.listing(path)  # a layout directory re-reads the snapshot list first
            if entries is None:
                raise OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))
            return [".", "..", *(name for name, _ in entries)]

        def readlink(self, path: str) -> str:
            entry = self._entry(path)
            if isinstance(entry, str):
                return entry
            if isinstance(entry, Node) and entry.type == "symlink":
                return entry.linktarget
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))

        def open(self, path: str, flags: int) -> int:
            if flags & (os.O_WRONLY | os.O_RDWR):
                raise OSError(errno.EROFS, os.strerror(errno.EROFS))
            self._entry(path)
            return 0

        def read(self, path: str, size: int, offset: int, fh: Any) -> bytes:
            entry = self._entry(path)
            if not isinstance(entry, Node) or entry.type != "file":
                raise OSError(errno.EISDIR, os.strerror(errno.EISDIR))
            return tree.read(entry, offset, size)

        def listxattr(self, path: str) -> list[str]:
            entry = self._entry(path)
            return [name for name, _ in entry.extended_attributes] if isinstance(entry, Node) else []

        def getxattr(self, path: str, name: str, position: int = 0) -> bytes:
            entry = self._entry(path)
            if isinstance(entry, Node):
                for key, value in entry.extended_attributes:
                    if key == name:
                        return value
            raise OSError(errno.ENODATA, os.strerror(errno.ENODATA))

    return Operations()


def run(app: App, args: argparse.Namespace) -> int:
    """Mount and serve until unmounted; exit 0 after a clean unmount."""
    mountpoint = os.path.abspath(args.mountpoint)
    if not os.path.isdir(mountpoint):
        raise UsageError(f"mount point {mountpoint} is not a directory: create it first")
    repo = app.open_repo()
    try:
        tree = MountTree(repo, snapshot_filter(args))
        import mfusepy

        app.info(
            f"serving {tree.snapshot_count()} snapshots at {mountpoint} (new ones appear as they are "
            f"made); unmount with `fusermount3 -u {mountpoint}` or Ctrl-C"
        )
        mfusepy.FUSE(
            _operations(tree),
            mountpoint,
            foreground=True,
            ro=True,
            nothreads=True,
            allow_other=args.allow_other,
            fsname="shadowvault",
        )
    finally:
        repo.close()
    return 0
