"""Conformance checks every backend must pass (after restic's ``backend/test`` suite).

Each check takes a fresh, created backend and raises ``AssertionError`` on a
violation; test modules run ``CHECKS`` against every backend implementation.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable

from shadowvault.repo.backends.base import Backend, FileType, exists


def _expect(cond: bool, what: str) -> None:
    if not cond:
        raise AssertionError(what)


def _name(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_save_load(be: Backend) -> None:
    """Saved bytes come back whole and by range, for every file type."""
    for ft in FileType:
        data = os.urandom(1000) + ft.value.encode()
        name = "config" if ft is FileType.CONFIG else _name(data)
        be.save(ft, name, data)
        _expect(be.load(ft, name) == data, f"{ft} whole load differs")
        _expect(be.load(ft, name, 10, 20) == data[10:30], f"{ft} range load differs")
        _expect(be.load(ft, name, 990) == data[990:], f"{ft} tail load differs")
        _expect(be.stat(ft, name) == len(data), f"{ft} stat size differs")


def check_missing(be: Backend) -> None:
    """Missing files raise FileNotFoundError from load, stat and remove."""
    name = _name(b"missing")
    for op in (lambda: be.load(FileType.PACK, name), lambda: be.stat(FileType.INDEX, name)):
        try:
            op()
        except FileNotFoundError:
            continue
        raise AssertionError("missing file did not raise FileNotFoundError")
    try:
        be.remove(FileType.SNAPSHOT, name)
    except FileNotFoundError:
        return
    raise AssertionError("removing a missing file did not raise FileNotFoundError")


def check_no_overwrite(be: Backend) -> None:
    """A second save under the same name is refused and the first content stays."""
    data = b"first"
    name = _name(data)
    be.save(FileType.SNAPSHOT, name, data)
    try:
        be.save(FileType.SNAPSHOT, name, b"second")
    except FileExistsError:
        _expect(be.load(FileType.SNAPSHOT, name) == data, "content changed by a refused save")
        return
    raise AssertionError("overwriting an existing file was allowed")


def check_list_and_remove(be: Backend) -> None:
    """list() shows exactly the saved files of a type with their sizes; remove() drops one."""
    saved = {}
    for i in range(20):
        data = os.urandom(i + 1)
        saved[_name(data)] = len(data)
        be.save(FileType.PACK, _name(data), data)
    be.save(FileType.INDEX, _name(b"other type"), b"other type")
    _expect(dict(be.list(FileType.PACK)) == saved, "pack listing differs from what was saved")
    victim = next(iter(saved))
    be.remove(FileType.PACK, victim)
    del saved[victim]
    _expect(dict(be.list(FileType.PACK)) == saved, "listing after remove is wrong")
    _expect(not exists(be, FileType.PACK, victim), "removed file still exists")


def check_short_range(be: Backend) -> None:
    """Reading past the end is an error, not a silent short read."""
    data = b"0123456789"
    name = _name(data)
    be.save(FileType.PACK, name, data)
    try:
        be.load(FileType.PACK, name, 5, 10)
    except EOFError:
        return
    raise AssertionError("range beyond the end did not raise EOFError")


def check_memoryview_input(be: Backend) -> None:
    """save() accepts bytearray and memoryview and stores a copy."""
    buf = bytearray(b"abc" * 100)
    name = _name(bytes(buf))
    be.save(FileType.PACK, name, memoryview(buf))
    buf[0] = 0
    _expect(be.load(FileType.PACK, name) == b"abc" * 100, "saved data aliased the caller's buffer")


CHECKS: list[Callable[[Backend], None]] = [
    check_save_load,
    check_missing,
    check_no_overwrite,
    check_list_and_remove,
    check_short_range,
    check_memoryview_input,
]
