"""reflink provider: a point-in-time copy of each file, made when it is read.

``FICLONE`` shares the file's extents with a new inode in one step that holds
both inodes' locks, so the clone shows the file either before or after any
concurrent ``write`` call, never half of one. No volume is frozen: each file
gets its own moment, taken just before the engine reads it, and the clone is
unlinked as soon as the read ends. Clones live in a hidden work directory at
the mount point (``.<prefix>-reflink-<session>``), because the ioctl only
works within one mount. Works on XFS (reflink=1) and btrfs; ``supports``
probes each file system once by cloning a tiny file.
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from shadowvault.errors import SnapshotError
from shadowvault.snapshots.interface import SnapshotProvider
from shadowvault.snapshots.model import DEFAULT_PREFIX, Handle, Unsupported, Volume, split_session
from shadowvault.snapshots.mounts import find_mount, mounts_of, read_mounts

__all__ = ["FICLONE", "ReflinkProvider", "clone_file", "work_dir_name"]

#: _IOW(0x94, 9, int): clone all of src_fd into the fd the ioctl is called on.
FICLONE = 0x40049409
#: File systems whose mount points list_stale looks at (reflink-capable, local: never NFS,
#: whose listing could hang).
REFLINK_FS_TYPES = ("xfs", "btrfs", "bcachefs", "ocfs2")
_NO_REFLINK = {errno.EOPNOTSUPP, errno.ENOTTY, errno.EINVAL, errno.EXDEV, errno.ENOSYS}


def work_dir_name(prefix: str, session: str) -> str:
    """Name of this session's hidden work directory at the mount point."""
    return f".{prefix}-reflink-{session}"


def clone_file(source: Path, target_fd: int) -> None:
    """Clone all of ``source`` into the open, empty file ``target_fd`` (thin FICLONE wrapper)."""
    # O_NONBLOCK: a FIFO named like a file must not hang us; FICLONE then refuses it.
    src = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        fcntl.ioctl(target_fd, FICLONE, src)
    finally:
        os.close(src)


class ReflinkProvider:
    """Per-file ``FICLONE`` copies in a hidden work directory on the source's mount."""

    def __init__(self, probe_prefix: str = DEFAULT_PREFIX) -> None:
        self._probe_prefix = probe_prefix
        # Probing writes to the file system, so do it once per mount and remember why not.
        self._probed: dict[Path, str | None] = {}

    @property
    def name(self) -> str:
        """Provider name."""
        return "reflink"

    def supports(self, path: Path) -> Volume | Unsupported:
        """The mount holding ``path`` if a probe file there can be cloned."""
        mount = find_mount(path)
        if mount is None:
            return Unsupported(self.name, f"no mount found for {path}")
        if mount.read_only:
            return Unsupported(self.name, f"{mount.mount_point} is mounted read-only")
        if mount.mount_point not in self._probed:
            self._probed[mount.mount_point] = self._probe(mount.mount_point, mount.fs_type)
        why_not = self._probed[mount.mount_point]
        if why_not is not None:
            return Unsupported(self.name, why_not)
        return Volume(self.name, str(mount.mount_point), mount.mount_point, mount.fs_type, mount.source)

    def _probe(self, mount_point: Path, fs_type: str) -> str | None:
        """None if reflinks work at ``mount_point``, else the reason for people."""
        tag = f"{work_dir_name(self._probe_prefix, '')}{os.getpid()}-{os.urandom(4).hex()}"
        source = mount_point / f"{tag}.probe"
        target = mount_point / f"{tag}.probe-clone"
        try:
            source.write_bytes(b"shadowvault reflink probe\n")
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            try:
                clone_file(source, fd)
            finally:
                os.close(fd)
        except OSError as exc:
            if exc.errno in _NO_REFLINK:
                return f"{fs_type} at {mount_point} does not support reflinks ({exc.strerror})"
            return f"cannot probe reflinks in {mount_point}: {exc.strerror or exc}"
        finally:
            for leftover in (source, target):
                leftover.unlink(missing_ok=True)
        return None

    def create(self, volume: Volume, prefix: str, session: str) -> Handle:
        """Make the (private) work directory; clones come later, one per file read."""
        work = volume.root / work_dir_name(prefix, session)
        try:
            work.mkdir(mode=0o700)
        except OSError as exc:
            raise SnapshotError(f"cannot create reflink work dir {work}: {exc.strerror or exc}") from None
        return Handle(self.name, str(work), session, path=work, volume=volume)

    def translate(self, handle: Handle, path: Path) -> Path:
        """Walking happens on the live tree: only file contents are cloned."""
        return path

    def open_file(self, handle: Handle, path: Path) -> AbstractContextManager[Path]:
        """A fresh clone of ``path``, unlinked when the context ends."""
        return self._clone(handle, path)

    @contextmanager
    def _clone(self, handle: Handle, path: Path) -> Iterator[Path]:
        if handle.path is None:
            raise SnapshotError(f"reflink work dir {handle.name} is gone")
        try:
            fd, name = tempfile.mkstemp(prefix="clone-", dir=handle.path)
        except OSError as exc:
            raise SnapshotError(f"cannot create a clone in {handle.path}: {exc.strerror or exc}") from None
        clone = Path(name)
        try:
            try:
                clone_file(path, fd)
            except OSError as exc:
                why = exc.strerror or str(exc)
                if exc.errno == errno.EXDEV:
                    root = handle.volume.root if handle.volume else handle.path.parent
                    why = f"it is on another mount than {root}"
                raise SnapshotError(f"cannot reflink {path}: {why}") from None
            finally:
                os.close(fd)
            yield clone
        finally:
            clone.unlink(missing_ok=True)

    def delete(self, handle: Handle) -> None:
        """Remove the work dir with any clones still in it."""
        if handle.path is None or not os.path.lexists(handle.path):
            return
        try:
            if handle.path.is_dir() and not handle.path.is_symlink():
                shutil.rmtree(handle.path)
            else:
                handle.path.unlink()
        except OSError as exc:
            raise SnapshotError(f"cannot remove {handle.path}: {exc.strerror or exc}") from None

    def list_stale(self, prefix: str) -> list[Handle]:
        """Work dirs and probe files with our prefix at the root of reflink-capable mounts."""
        marker = work_dir_name(prefix, "")
        seen: set[tuple[int, int]] = set()
        handles: list[Handle] = []
        for mount in mounts_of(read_mounts(), REFLINK_FS_TYPES):
            if mount.read_only:
                continue
            try:
                names = os.listdir(mount.mount_point)
            except OSError:
                continue
            for entry in names:
                parsed = split_session(entry[len(marker) :]) if entry.startswith(marker) else None
                if parsed is None:
                    continue
                path = mount.mount_point / entry
                try:
                    st = os.lstat(path)
                except OSError:
                    continue
                if (st.st_dev, st.st_ino) in seen:
                    continue  # the same file system mounted twice
                seen.add((st.st_dev, st.st_ino))
                handles.append(Handle(self.name, str(path), parsed[0], path=path))
        return handles


_: SnapshotProvider = ReflinkProvider()
