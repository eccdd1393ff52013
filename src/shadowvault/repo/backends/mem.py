"""In-memory backend for tests (restic's ``mem`` backend): a dict behind a lock."""

from __future__ import annotations

import threading
from collections.abc import Iterator

from shadowvault.repo.backends.base import Backend, FileType, slice_range


class MemBackend:
    """Files kept in a dictionary; thread-safe; same semantics as the local backend."""

    def __init__(self) -> None:
        self._files: dict[tuple[FileType, str], bytes] = {}
        self._lock = threading.Lock()

    def location(self) -> str:
        """Describes the in-memory store."""
        return f"mem:{id(self):x}"

    def create(self) -> None:
        """Nothing to prepare in memory."""

    def _key(self, ft: FileType, name: str) -> tuple[FileType, str]:
        return (ft, "config" if ft is FileType.CONFIG else name)

    def save(self, ft: FileType, name: str, data: bytes | bytearray | memoryview) -> None:
        """Store a copy of ``data``; ``FileExistsError`` if present."""
        key = self._key(ft, name)
        with self._lock:
            if key in self._files:
                raise FileExistsError(f"{ft.value} {name} already exists")
            self._files[key] = bytes(data)

    def load(self, ft: FileType, name: str, offset: int = 0, length: int | None = None) -> bytes:
        """Read all or a range."""
        with self._lock:
            try:
                data = self._files[self._key(ft, name)]
            except KeyError:
                raise FileNotFoundError(f"{ft.value} {name} does not exist") from None
        return slice_range(data, offset, length)

    def stat(self, ft: FileType, name: str) -> int:
        """Size in bytes."""
        with self._lock:
            try:
                return len(self._files[self._key(ft, name)])
            except KeyError:
                raise FileNotFoundError(f"{ft.value} {name} does not exist") from None

    def list(self, ft: FileType) -> Iterator[tuple[str, int]]:
        """Snapshot of the names of one type."""
        with self._lock:
            items = [(name, len(data)) for (t, name), data in self._files.items() if t is ft]
        return iter(items)

    def remove(self, ft: FileType, name: str) -> None:
        """Delete one file."""
        with self._lock:
            try:
                del self._files[self._key(ft, name)]
            except KeyError:
                raise FileNotFoundError(f"{ft.value} {name} does not exist") from None

    def is_permanent_error(self, exc: BaseException) -> bool:
        """Missing/existing files and bad ranges are permanent; anything else (injected
        by tests, e.g. ``OSError``) is treated as transient."""
        return isinstance(exc, (FileNotFoundError, FileExistsError, EOFError, ValueError))

    def close(self) -> None:
        """Nothing to release."""

    def corrupt(self, ft: FileType, name: str, offset: int) -> None:
        """Flip one byte in place; only for tests that simulate bit rot."""
        key = self._key(ft, name)
        with self._lock:
            data = bytearray(self._files[key])
            data[offset] ^= 0xFF
            self._files[key] = bytes(data)


_: Backend = MemBackend()
