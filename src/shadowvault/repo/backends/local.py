"""Local directory backend in restic's default layout.

``config``, ``keys/``, ``index/``, ``snapshots/``, ``locks/`` and ``data/xx/``
(all 256 two-hex-digit subdirectories made at creation). Each file is written to
a hidden temporary name in its target directory, fsync'd, then linked into
place (which fails instead of replacing an existing file) and the directory is
fsync'd, so a crash leaves either the whole file or nothing. Finished files are
made read-only, as restic does. Temporary names start with ``.`` and are not
valid ids, so ``list`` and restic both ignore leftovers.
"""

from __future__ import annotations

import errno
import os
import secrets
import threading
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path

from shadowvault.repo.backends.base import Backend, FileType

_DIRS = {
    FileType.KEY: "keys",
    FileType.PACK: "data",
    FileType.INDEX: "index",
    FileType.SNAPSHOT: "snapshots",
    FileType.LOCK: "locks",
}
_DIR_MODE = 0o700
_FILE_MODE = 0o400
_MAX_CACHED_FDS = 64
"""Pack files kept open for reading; well below the usual 1024 descriptors per process."""


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    except OSError as exc:
        # Some file systems (e.g. certain FUSE/CIFS mounts) refuse fsync on a
        # directory; the rename itself is still atomic there.
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP):
            raise
    finally:
        os.close(fd)


class _Handle:
    """One cached read-only descriptor and how many readers are using it right now."""

    __slots__ = ("evicted", "fd", "users")

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.users = 0
        self.evicted = False


class _FdCache:
    """Read-only descriptors of pack files, shared by threads, least recently used closed first.

    Packs are immutable (their name is the hash of their content), so a cached
    descriptor never serves stale bytes. A descriptor evicted while a reader uses it is
    closed by the last reader, never under its feet.
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._lock = threading.Lock()
        self._open: OrderedDict[str, _Handle] = OrderedDict()

    def acquire(self, path: str) -> _Handle:
        """The descriptor of ``path`` (opened if needed), marked in use; pair with ``release``."""
        with self._lock:
            h = self._open.get(path)
            if h is not None:
                self._open.move_to_end(path)
                h.users += 1
                return h
            h = _Handle(os.open(path, os.O_RDONLY | os.O_CLOEXEC))
            h.users = 1
            self._open[path] = h
            while len(self._open) > self._limit:
                _, old = self._open.popitem(last=False)
                self._drop(old)
            return h

    def release(self, h: _Handle) -> None:
        """Mark a descriptor no longer in use by the caller."""
        with self._lock:
            h.users -= 1
            if h.evicted and h.users == 0:
                os.close(h.fd)

    def forget(self, path: str) -> None:
        """Stop caching ``path`` (its file was removed)."""
        with self._lock:
            h = self._open.pop(path, None)
            if h is not None:
                self._drop(h)

    def clear(self) -> None:
        """Close every descriptor not in use; those in use close when released."""
        with self._lock:
            for h in self._open.values():
                self._drop(h)
            self._open.clear()

    @staticmethod
    def _drop(h: _Handle) -> None:
        h.evicted = True
        if h.users == 0:
            os.close(h.fd)


def _pread_exact(fd: int, length: int, offset: int) -> bytes:
    """``length`` bytes at ``offset``, or fewer only at the end of the file."""
    data = os.pread(fd, length, offset)
    if len(data) == length or not data:
        return data
    # Short reads of regular files are rare (signals, huge requests): finish the rest.
    parts = [data]
    got = len(data)
    while got < length:
        more = os.pread(fd, length - got, offset + got)
        if not more:
            break
        parts.append(more)
        got += len(more)
    return b"".join(parts)


class LocalBackend:
    """A repository in a local directory."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self._data_dir = os.path.join(str(self.root), "data")
        # Restore reads thousands of blobs from the same few packs; reopening a
        # pack (through pathlib) for each blob cost more than reading it.
        self._fds = _FdCache(_MAX_CACHED_FDS)

    def location(self) -> str:
        """The repository directory."""
        return str(self.root)

    def path(self, ft: FileType, name: str) -> Path:
        """Where a file of that type and name lives."""
        if ft is FileType.CONFIG:
            return self.root / "config"
        if "/" in name or name.startswith(".") or not name:
            raise ValueError(f"invalid repository file name {name!r}")
        if ft is FileType.PACK:
            return self.root / "data" / name[:2] / name
        return self.root / _DIRS[ft] / name

    def create(self) -> None:
        """Make the repository directories (keeps existing ones)."""
        self.root.mkdir(mode=_DIR_MODE, parents=True, exist_ok=True)
        for sub in _DIRS.values():
            (self.root / sub).mkdir(mode=_DIR_MODE, exist_ok=True)
        data = self.root / "data"
        for i in range(256):
            (data / f"{i:02x}").mkdir(mode=_DIR_MODE, exist_ok=True)
        _fsync_dir(data)
        _fsync_dir(self.root)

    def save(self, ft: FileType, name: str, data: bytes | bytearray | memoryview) -> None:
        """Write atomically (temp file + fsync + link + dir fsync); never replaces a file."""
        final = self.path(ft, name)
        final.parent.mkdir(mode=_DIR_MODE, parents=True, exist_ok=True)
        tmp = final.parent / f".tmp-{final.name}-{secrets.token_hex(6)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
            os.fchmod(fd, _FILE_MODE)
        except BaseException:
            os.close(fd)
            tmp.unlink(missing_ok=True)
            raise
        os.close(fd)
        try:
            self._publish(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)
        _fsync_dir(final.parent)

    @staticmethod
    def _publish(tmp: Path, final: Path) -> None:
        try:
            # link() refuses an existing target, unlike rename(): files are
            # never overwritten, even by a racing writer.
            os.link(tmp, final)
        except FileExistsError:
            raise FileExistsError(f"{final} already exists") from None
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
                raise
            if final.exists():
                raise FileExistsError(f"{final} already exists") from None
            os.rename(tmp, final)

    def load(self, ft: FileType, name: str, offset: int = 0, length: int | None = None) -> bytes:
        """Read the whole file or a range (packs through cached descriptors and ``pread``)."""
        if ft is FileType.PACK:
            return self._load_pack(name, offset, length)
        path = self.path(ft, name)
        with open(path, "rb") as f:
            if offset:
                f.seek(offset)
            data = f.read() if length is None else f.read(length)
        if length is not None and len(data) != length:
            raise EOFError(f"{path}: wanted {length} bytes at {offset}, file is shorter")
        return data

    def _load_pack(self, name: str, offset: int, length: int | None) -> bytes:
        if "/" in name or name.startswith(".") or not name:
            raise ValueError(f"invalid repository file name {name!r}")
        if offset < 0 or (length is not None and length < 0):
            raise ValueError("negative offset or length")
        # Same file as path(PACK, name), built without pathlib on this hot path.
        path = os.path.join(self._data_dir, name[:2], name)
        h = self._fds.acquire(path)
        try:
            if length is None:
                return _pread_exact(h.fd, max(0, os.fstat(h.fd).st_size - offset), offset)
            data = _pread_exact(h.fd, length, offset)
        finally:
            self._fds.release(h)
        if len(data) != length:
            raise EOFError(f"{path}: wanted {length} bytes at {offset}, file is shorter")
        return data

    def stat(self, ft: FileType, name: str) -> int:
        """Size in bytes."""
        return self.path(ft, name).stat().st_size

    def list(self, ft: FileType) -> Iterator[tuple[str, int]]:
        """Names and sizes, skipping temporary files; empty when the directory is missing."""
        if ft is FileType.CONFIG:
            cfg = self.root / "config"
            if cfg.exists():
                yield ("config", cfg.stat().st_size)
            return
        top = self.root / _DIRS[ft]
        dirs = [top]
        if ft is FileType.PACK:
            try:
                dirs = sorted(p for p in top.iterdir() if p.is_dir())
            except FileNotFoundError:
                return
        for d in dirs:
            try:
                entries = list(os.scandir(d))
            except FileNotFoundError:
                continue
            for entry in entries:
                if entry.name.startswith(".") or not entry.is_file(follow_symlinks=False):
                    continue
                try:
                    yield (entry.name, entry.stat(follow_symlinks=False).st_size)
                except FileNotFoundError:
                    continue

    def remove(self, ft: FileType, name: str) -> None:
        """Delete one file and fsync its directory."""
        path = self.path(ft, name)
        if ft is FileType.PACK:
            self._fds.forget(str(path))
        path.unlink()
        _fsync_dir(path.parent)

    def is_permanent_error(self, exc: BaseException) -> bool:
        """Missing files, permissions and bad names do not heal by retrying."""
        return isinstance(exc, (FileNotFoundError, FileExistsError, PermissionError, ValueError, EOFError))

    def close(self) -> None:
        """Close the cached pack descriptors (later loads reopen them)."""
        self._fds.clear()


_: Backend = LocalBackend(Path("/nonexistent"))
