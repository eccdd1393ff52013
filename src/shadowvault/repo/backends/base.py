"""The storage interface the repository writes through: opaque named files by type.

A backend stores bytes under ``(FileType, name)``; it knows nothing of crypto.
Every ``save`` is atomic and never replaces an existing file (repository files
are written once and never modified). Missing files raise ``FileNotFoundError``,
an existing target on ``save`` raises ``FileExistsError``.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from typing import Protocol, runtime_checkable


class FileType(enum.Enum):
    """Kinds of repository file; the value is restic's name for the kind."""

    CONFIG = "config"
    KEY = "key"
    PACK = "data"
    INDEX = "index"
    SNAPSHOT = "snapshot"
    LOCK = "lock"


@runtime_checkable
class Backend(Protocol):
    """Minimal storage a repository needs (restic ``backend.Backend``)."""

    def location(self) -> str:
        """Human-readable place, used in messages (a path or URL)."""
        ...

    def create(self) -> None:
        """Prepare an empty repository layout (directories); existing ones are kept."""
        ...

    def save(self, ft: FileType, name: str, data: bytes | bytearray | memoryview) -> None:
        """Store ``data`` atomically; ``FileExistsError`` if the file is already there."""
        ...

    def load(self, ft: FileType, name: str, offset: int = 0, length: int | None = None) -> bytes:
        """Read the file, or ``length`` bytes from ``offset``; ``FileNotFoundError`` when missing."""
        ...

    def stat(self, ft: FileType, name: str) -> int:
        """Size in bytes; ``FileNotFoundError`` when missing."""
        ...

    def list(self, ft: FileType) -> Iterator[tuple[str, int]]:
        """``(name, size)`` for every file of that type, in no particular order."""
        ...

    def remove(self, ft: FileType, name: str) -> None:
        """Delete a file; ``FileNotFoundError`` when missing."""
        ...

    def is_permanent_error(self, exc: BaseException) -> bool:
        """True when retrying the failed operation cannot help."""
        ...

    def close(self) -> None:
        """Release resources."""
        ...


TYPE_DIRS = {
    FileType.KEY: "keys",
    FileType.PACK: "data",
    FileType.INDEX: "index",
    FileType.SNAPSHOT: "snapshots",
    FileType.LOCK: "locks",
}
"""restic's directory (or key prefix, or REST path) of each kind; the config is one file at the top."""


def object_path(ft: FileType, name: str) -> str:
    """Path of a file relative to the repository root in restic's default layout (data/xx/id)."""
    if ft is FileType.CONFIG:
        return "config"
    if "/" in name or name.startswith(".") or not name:
        raise ValueError(f"invalid repository file name {name!r}")
    if ft is FileType.PACK:
        return f"data/{name[:2]}/{name}"
    return f"{TYPE_DIRS[ft]}/{name}"


class RemoteError(OSError):
    """A remote store refused or failed an operation; ``permanent`` says retrying cannot help.

    An ``OSError``, so the repository layer's messages ("cannot read ... (reason): ...") cover it.
    """

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


def upload_connections(backend: Backend) -> int:
    """How many pack uploads the backend wants in flight at once (1 unless it says otherwise)."""
    n = getattr(backend, "connections", 1)
    return n if isinstance(n, int) and n >= 1 else 1


def is_remote(backend: Backend) -> bool:
    """True for backends behind a network, where every request is a round trip."""
    return getattr(backend, "remote", False) is True


def innermost(backend: Backend) -> Backend:
    """The backend below every wrapper (``RetryBackend``, ``RateLimitBackend`` keep theirs in
    ``inner``): what a check for a local directory must look at."""
    while True:
        inner = getattr(backend, "inner", None)
        if inner is None:
            return backend
        backend = inner


def exists(backend: Backend, ft: FileType, name: str) -> bool:
    """True when the file is present."""
    try:
        backend.stat(ft, name)
    except FileNotFoundError:
        return False
    return True


def list_config(backend: Backend) -> Iterator[tuple[str, int]]:
    """The listing of the CONFIG type: the one file ``config`` when present (a remote store has no
    directory to list for it, so it is asked for by name)."""
    try:
        size = backend.stat(FileType.CONFIG, "config")
    except FileNotFoundError:
        return
    yield ("config", size)


def slice_range(data: bytes, offset: int, length: int | None) -> bytes:
    """``data[offset:offset+length]``, refusing ranges past the end (like a short read)."""
    if offset < 0 or (length is not None and length < 0):
        raise ValueError("negative offset or length")
    end = len(data) if length is None else offset + length
    if end > len(data) or offset > len(data):
        raise EOFError(f"range {offset}+{length} is beyond the end of a {len(data)}-byte file")
    return data[offset:end]
