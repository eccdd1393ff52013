"""reflink provider: a point-in-time copy of each file, made when it is read.

``FICLONE`` shares the file's extents with a new inode in one step that holds
both inodes' locks, so the clone shows the file either before or after any
concurrent ``write`` call, never half of one. No volume is frozen: each file
gets its own moment, taken just before the engine reads it, and the clone is
unlinked as soon as the read ends. Clones live in a hidden work directory at
the mount point (``.<prefix>-reflink-<session>``), because the ioctl only
works within one mount. Works on XFS (reflink=1) and btrfs; ``supports``
probes each file system once by cloning a tiny file.

Files that belong together (a database and its journal) must come from one
moment too. So before cloning a file the provider takes a shared read lock on
it (see ``filelock``): a lock-respecting writer cannot be in the middle of a
change while it is held. Under that lock it clones the file and its companion
files (``NAME-journal``, ``NAME-wal``, ``NAME-shm``) and releases the lock at
once. The companion clones wait in the work dir until the engine asks for
those files; clones never asked for (excluded files) go with the work dir.
A companion asked for without such a clone is cloned under its main file's
lock; if it does not exist then (or when asked), ``open_file`` yields a path
where nothing exists, so the engine leaves it out as deleted before it was
read (reading the live file instead would pair a later journal with an older db).

What the lock guarantees: a rollback-journal writer (SQLite's default) holds a
write lock on the db from its first journal write until the journal is gone,
so the clones are a committed state. In WAL mode writers and checkpoints lock
bytes of ``-shm``, not the db; cloning the db before ``-wal`` means the log
clone holds every frame a running checkpoint was copying, which leaves only a
log restart between two ioctls uncovered. The cost: while the lock is held
(about a millisecond per file) a writer gets "busy" and must retry, as it does
when any reader holds the db at its commit; SQLite's busy timeout absorbs it.

If the lock cannot be had within ``lock_wait`` seconds (an application holding
it for long), the files are cloned anyway, back to back: each clone is still
an atomic copy of its file, as good as a volume snapshot for that file alone,
but a main file and its companions then share a moment only to within the
microseconds between two ioctls. Providers have no message channel, so this
is not reported; files not written under locks never wait at all.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import stat
import tempfile
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from shadowvault.errors import SnapshotError
from shadowvault.snapshots.filelock import companions_of, main_of, release_read_lock, take_read_lock
from shadowvault.snapshots.interface import SnapshotProvider
from shadowvault.snapshots.model import DEFAULT_PREFIX, Handle, Unsupported, Volume, split_session
from shadowvault.snapshots.mounts import find_mount, mounts_of, read_mounts

__all__ = ["DEFAULT_LOCK_WAIT", "FICLONE", "ReflinkProvider", "clone_fd", "clone_file", "work_dir_name"]

#: _IOW(0x94, 9, int): clone all of src_fd into the fd the ioctl is called on.
FICLONE = 0x40049409
#: File systems whose mount points list_stale looks at (reflink-capable, local: never NFS,
#: whose listing could hang).
REFLINK_FS_TYPES = ("xfs", "btrfs", "bcachefs", "ocfs2")
#: Seconds to wait for a writer's lock before cloning without one. Generous, because a commit
#: stalled in fsync on a busy disk holds its lock for seconds, and giving up costs consistency
#: while waiting costs only time (once per file: a wait still pending is not started again).
DEFAULT_LOCK_WAIT = 10.0
_NO_REFLINK = {errno.EOPNOTSUPP, errno.ENOTTY, errno.EINVAL, errno.EXDEV, errno.ENOSYS}
# O_NONBLOCK: a FIFO named like a file must not hang us; FICLONE then refuses it.
_SOURCE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def work_dir_name(prefix: str, session: str) -> str:
    """Name of this session's hidden work directory at the mount point."""
    return f".{prefix}-reflink-{session}"


def clone_fd(source_fd: int, target_fd: int) -> None:
    """Clone all of the open file ``source_fd`` into the open, empty file ``target_fd`` (FICLONE)."""
    fcntl.ioctl(target_fd, FICLONE, source_fd)


def clone_file(source: Path, target_fd: int) -> None:
    """Clone all of ``source`` into the open, empty file ``target_fd`` (thin FICLONE wrapper)."""
    src = os.open(source, _SOURCE_FLAGS)
    try:
        clone_fd(src, target_fd)
    finally:
        os.close(src)


class ReflinkProvider:
    """Per-file ``FICLONE`` copies in a hidden work directory on the source's mount."""

    def __init__(self, probe_prefix: str = DEFAULT_PREFIX, *, lock_wait: float = DEFAULT_LOCK_WAIT) -> None:
        self._probe_prefix = probe_prefix
        self._lock_wait = lock_wait
        # Probing writes to the file system, so do it once per mount and remember why not.
        self._probed: dict[Path, str | None] = {}
        #: (work dir, live companion path) -> its clone, made together with the main file's.
        self._kept: dict[tuple[str, Path], Path] = {}
        self._kept_guard = threading.Lock()

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
        """The clone of ``path`` made together with its main file's, else a fresh one.

        The clone is unlinked when the context ends. A companion file that did
        not exist at its main file's locked moment yields a path where nothing
        exists (the engine then leaves it out as deleted before it was read).
        """
        return self._serve(handle, path)

    @contextmanager
    def _serve(self, handle: Handle, path: Path) -> Iterator[Path]:
        work = self._work_dir(handle)
        with self._kept_guard:
            clone = self._kept.pop((handle.name, path), None)
        if clone is None:
            main = main_of(path)
            if main is not None and _is_regular(main):
                if not os.path.lexists(path):
                    # Gone (a finished transaction's journal): no need to hold up the writer.
                    clone = _absent(work)
                else:
                    # A companion with no clone kept: it is taken under its main file's lock, alone.
                    clone = self._clone_group(handle, work, main, path)
            else:
                clone = self._clone_group(handle, work, path, path)
        try:
            yield clone
        finally:
            clone.unlink(missing_ok=True)

    def _work_dir(self, handle: Handle) -> Path:
        if handle.path is None:
            raise SnapshotError(f"reflink work dir {handle.name} is gone")
        return handle.path

    def _clone_group(self, handle: Handle, work: Path, main: Path, wanted: Path) -> Path:
        """Clone ``wanted`` under a shared lock on ``main``; when they are one file, keep its companions.

        The lock is held only for the clones themselves (a few ioctls), so a
        writer waits milliseconds. Without the lock (held elsewhere for longer
        than ``lock_wait``) the clones are still made, back to back.
        """
        try:
            fd = os.open(main, _SOURCE_FLAGS)
        except OSError as exc:
            if main == wanted:
                raise self._clone_error(handle, wanted, exc) from None
            return self._clone_path(handle, work, wanted)  # the main went away: clone the companion alone
        kept: dict[Path, Path] = {}
        try:
            locked = _is_regular_fd(fd) and take_read_lock(fd, self._lock_wait)
            try:
                if main != wanted:
                    return self._clone_path(handle, work, wanted)
                try:
                    clone = _new_clone(work, fd)
                except OSError as exc:
                    raise self._clone_error(handle, wanted, exc) from None
                # Main first: a journal or log cloned after it holds at least what the main lacks.
                for companion in companions_of(main):
                    # One that cannot be cloned now is not kept: asked for later, it is cloned
                    # then, and fails then with a message if it still cannot.
                    if _is_regular(companion):
                        with contextlib.suppress(OSError, SnapshotError):
                            kept[companion] = _new_clone_of(work, companion)
            finally:
                if locked:
                    release_read_lock(fd)
        finally:
            os.close(fd)
        self._keep(handle, main, kept)
        return clone

    def _clone_path(self, handle: Handle, work: Path, path: Path) -> Path:
        """A clone of ``path``, or a path where nothing exists if ``path`` does not."""
        try:
            return _new_clone_of(work, path)
        except FileNotFoundError:
            return _absent(work)
        except OSError as exc:
            raise self._clone_error(handle, path, exc) from None

    def _keep(self, handle: Handle, main: Path, kept: dict[Path, Path]) -> None:
        """Remember ``main``'s companion clones for when the engine asks.

        Clones kept from an earlier moment of ``main`` go, also those of companions
        that no longer exist: they must not be paired with this newer main clone.
        """
        with self._kept_guard:
            for companion in companions_of(main):
                old = self._kept.pop((handle.name, companion), None)
                if old is not None:
                    old.unlink(missing_ok=True)
                if companion in kept:
                    self._kept[(handle.name, companion)] = kept[companion]

    def _clone_error(self, handle: Handle, path: Path, exc: OSError) -> SnapshotError:
        why = exc.strerror or str(exc)
        if exc.errno == errno.EXDEV:
            root = handle.volume.root if handle.volume else self._work_dir(handle).parent
            why = f"it is on another mount than {root}"
        return SnapshotError(f"cannot reflink {path}: {why}")

    def delete(self, handle: Handle) -> None:
        """Remove the work dir with any clones still in it (companion clones never asked for too)."""
        with self._kept_guard:
            for key in [k for k in self._kept if k[0] == handle.name]:
                del self._kept[key]
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


def _is_regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def _absent(work: Path) -> Path:
    """A path in the work dir where nothing exists: what open_file yields for a file that did not."""
    return work / f"absent-{os.urandom(8).hex()}"


def _is_regular_fd(fd: int) -> bool:
    try:
        return stat.S_ISREG(os.fstat(fd).st_mode)
    except OSError:
        return False


def _new_clone(work: Path, source_fd: int) -> Path:
    """A new file in ``work`` holding a clone of ``source_fd``; raises ``OSError``, leaving nothing."""
    try:
        fd, name = tempfile.mkstemp(prefix="clone-", dir=work)
    except OSError as exc:
        raise SnapshotError(f"cannot create a clone in {work}: {exc.strerror or exc}") from None
    try:
        clone_fd(source_fd, fd)
    except BaseException:
        os.unlink(name)
        raise
    finally:
        os.close(fd)
    return Path(name)


def _new_clone_of(work: Path, source: Path) -> Path:
    src = os.open(source, _SOURCE_FLAGS)
    try:
        return _new_clone(work, src)
    finally:
        os.close(src)


_: SnapshotProvider = ReflinkProvider()
