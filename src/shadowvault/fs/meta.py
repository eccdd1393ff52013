"""Neutral file metadata read with ``lstat`` (plus extended attributes).

``FileMeta`` describes one directory entry exactly as the file system reports it, without
following symlinks. It is deliberately *not* restic's tree node: the engine's ``nodes.py`` is the
only place that translates it into the repository vocabulary, so this layer stays independent of
the repository format.
"""

from __future__ import annotations

import errno
import grp
import os
import pwd
import stat
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["FileKind", "FileMeta", "kind_of", "read_meta", "read_xattrs"]

FileKind = Literal["file", "dir", "symlink", "dev", "chardev", "fifo", "socket"]

# Errors meaning "this file system keeps no extended attributes": an empty list, not a problem.
_NO_XATTR_SUPPORT = frozenset({errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS})

# uid/gid → name lookups hit NSS (possibly LDAP) — cache them for the life of the process.
_user_names: dict[int, str] = {}
_group_names: dict[int, str] = {}


@dataclass(frozen=True)
class FileMeta:
    """Metadata of one directory entry, from ``os.lstat`` (symlinks are not followed).

    ``user``/``group`` are the names of ``uid``/``gid`` ("" when the id has no name on this
    host). ``linktarget`` is set only for symlinks. ``xattrs`` is sorted by name.
    """

    name: bytes
    kind: FileKind
    mode: int
    uid: int
    gid: int
    user: str
    group: str
    inode: int
    device: int
    rdev: int
    size: int
    nlink: int
    atime_ns: int
    mtime_ns: int
    ctime_ns: int
    linktarget: bytes | None = None
    xattrs: list[tuple[str, bytes]] = field(default_factory=list)

    @property
    def is_dir(self) -> bool:
        """True for directories (not for symlinks pointing at one)."""
        return self.kind == "dir"

    @property
    def is_regular(self) -> bool:
        """True for regular files."""
        return self.kind == "file"

    @property
    def permissions(self) -> int:
        """The permission bits (including setuid/setgid/sticky) without the file-type bits."""
        return stat.S_IMODE(self.mode)


_S_IFMT = 0o170000
_KINDS: dict[int, FileKind] = {
    stat.S_IFREG: "file",
    stat.S_IFDIR: "dir",
    stat.S_IFLNK: "symlink",
    stat.S_IFBLK: "dev",
    stat.S_IFCHR: "chardev",
    stat.S_IFIFO: "fifo",
    stat.S_IFSOCK: "socket",
}


def kind_of(mode: int) -> FileKind:
    """Map an ``st_mode`` to the file kind; ``ValueError`` for a type Linux does not have."""
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISBLK(mode):
        return "dev"
    if stat.S_ISCHR(mode):
        return "chardev"
    if stat.S_ISFIFO(mode):
        return "fifo"
    if stat.S_ISSOCK(mode):
        return "socket"
    raise ValueError(f"unknown file type in mode {mode:o}")


def user_name(uid: int) -> str:
    """Name of ``uid`` on this host, "" when it has none (cached)."""
    name = _user_names.get(uid)
    if name is None:
        try:
            name = pwd.getpwuid(uid).pw_name
        except KeyError:
            name = ""
        _user_names[uid] = name
    return name


def group_name(gid: int) -> str:
    """Name of ``gid`` on this host, "" when it has none (cached)."""
    name = _group_names.get(gid)
    if name is None:
        try:
            name = grp.getgrgid(gid).gr_name
        except KeyError:
            name = ""
        _group_names[gid] = name
    return name


def read_xattrs(path: bytes) -> list[tuple[str, bytes]]:
    """Extended attributes of ``path`` itself (a symlink's own), sorted by name.

    A file system without xattr support gives ``[]``. An attribute that disappears between
    listing and reading is skipped; any other error is raised as ``OSError``.
    """
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError as e:
        if e.errno in _NO_XATTR_SUPPORT:
            return []
        raise
    result: list[tuple[str, bytes]] = []
    if not names:
        return result
    for attr in sorted(names):
        try:
            value = os.getxattr(path, attr, follow_symlinks=False)
        except OSError as e:
            # Removed by someone else meanwhile: the file simply no longer has it.
            if e.errno == errno.ENODATA or e.errno in _NO_XATTR_SUPPORT:
                continue
            raise
        result.append((attr, value))
    return result


def read_meta(path: bytes, *, with_xattrs: bool = True) -> FileMeta:
    """Read the metadata of ``path`` without following a final symlink.

    Raises ``OSError`` (e.g. ``FileNotFoundError`` when the entry vanished); callers that walk a
    tree hand it to their error function. ``name`` is the last path component (``b""`` for ``/``).
    """
    st = os.lstat(path)
    mode = st.st_mode
    kind = _KINDS.get(mode & _S_IFMT) or kind_of(mode)
    linktarget = os.readlink(path) if kind == "symlink" else None
    # Every kind can carry xattrs (security.selinux labels on device nodes, for instance).
    xattrs = read_xattrs(path) if with_xattrs else []
    if path.endswith(b"/"):
        name = os.path.basename(path.rstrip(b"/")) if path != b"/" else b""
    else:
        name = path.rpartition(b"/")[2]
    uid, gid = st.st_uid, st.st_gid
    user = _user_names.get(uid)
    if user is None:
        user = user_name(uid)
    group = _group_names.get(gid)
    if group is None:
        group = group_name(gid)
    # The generated __init__ of a frozen dataclass sets each of the 17 fields through
    # object.__setattr__, which costs more than the lstat itself; filling the instance dict
    # directly gives the same object (equal, hashable, still frozen) once per walked entry.
    meta: FileMeta = object.__new__(FileMeta)
    meta.__dict__.update(
        name=name,
        kind=kind,
        mode=mode,
        uid=uid,
        gid=gid,
        user=user,
        group=group,
        inode=st.st_ino,
        device=st.st_dev,
        rdev=st.st_rdev,
        size=st.st_size,
        nlink=st.st_nlink,
        atime_ns=st.st_atime_ns,
        mtime_ns=st.st_mtime_ns,
        ctime_ns=st.st_ctime_ns,
        linktarget=linktarget,
        xattrs=xattrs,
    )
    return meta
