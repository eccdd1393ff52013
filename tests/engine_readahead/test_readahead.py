"""Read-ahead warms the page cache with what the walk needs next, and nothing it must not touch.

Residency is measured with util-linux's ``fincore``; files are evicted first with
``POSIX_FADV_DONTNEED`` (clean pages after ``sync``), so each test starts cold for its files.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from conftest import require_binary, require_root
from loopfs import tmpfs
from shadowvault.engine.readahead import MAX_SIZE, ReadAhead


def _evict(*paths: Path) -> None:
    os.sync()
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def _resident(p: Path) -> int:
    argv = ["fincore", "--bytes", "--noheadings", "--output", "RES", str(p)]
    out = subprocess.run(argv, capture_output=True, text=True, check=True)
    return int(out.stdout.strip() or 0)


def _becomes_resident(p: Path, size: int) -> bool:
    """WILLNEED only starts the reads: wait for them to land."""
    deadline = time.monotonic() + 10
    while _resident(p) < size:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _run(base: Path, *then: Path) -> None:
    """Read ahead for ``base``, then for each of ``then`` as the walk lists them."""
    ra = ReadAhead()
    for i, d in enumerate((base, *then)):
        if i:  # what the first directory prefetched is evicted before the walk "enters" the next
            ra._pool.submit(lambda: None).result(timeout=30)
            _evict(*(p for p in d.rglob("*.txt")))
        ra.directory(os.fsencode(d), sorted(os.listdir(os.fsencode(d))))
    # close() drops queued work; wait for the queued directories first.
    ra._pool.submit(lambda: None).result(timeout=30)
    ra.close()


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    require_binary("fincore")
    base = tmp_path / "src"
    (base / "sub" / "deeper").mkdir(parents=True)
    small = (base / "a.txt", base / "z.txt", base / "sub" / "b.txt", base / "sub" / "deeper" / "c.txt")
    for p in small:
        p.write_bytes(os.urandom(64 * 1024))
    (base / "big.bin").write_bytes(os.urandom(MAX_SIZE + 4096))
    os.mkfifo(base / "pipe")
    _evict(*small, base / "big.bin")
    for p in (base / "a.txt", base / "sub" / "b.txt", base / "big.bin"):
        if _resident(p):
            pytest.skip("this file system keeps evicted pages resident (e.g. tmpfs)")
    return base


def test_prefetches_small_files_and_the_level_below(tree: Path) -> None:
    _run(tree)
    assert _becomes_resident(tree / "a.txt", 64 * 1024)
    assert _becomes_resident(tree / "sub" / "b.txt", 64 * 1024)  # one level down: entering sub is warm
    assert _resident(tree / "sub" / "deeper" / "c.txt") == 0  # two levels down: not yet
    assert _resident(tree / "big.bin") == 0  # the kernel's sequential read-ahead covers large files


def test_a_directory_prefetched_as_the_level_below_is_not_gone_through_again(tree: Path) -> None:
    # The walk lists src, then enters sub: sub's files were prefetched with src (one level down),
    # so only the level below sub is left to do (each file of a cold tree was opened twice).
    _run(tree, tree / "sub")
    assert _becomes_resident(tree / "sub" / "deeper" / "c.txt", 64 * 1024)
    assert _resident(tree / "sub" / "b.txt") == 0  # evicted after the first pass, not fetched again


def test_does_not_descend_into_another_file_system(tmp_path: Path) -> None:
    require_root()
    base = tmp_path / "src"
    base.mkdir()
    with tmpfs(base) as mnt:
        (mnt / "x.txt").write_bytes(b"x" * 1000)
        st = os.lstat(mnt)
        old_atime = st.st_mtime_ns - 10**9
        os.utime(mnt, ns=(old_atime, st.st_mtime_ns))
        _run(base)
        # Listing a directory updates its access time (atime older than mtime, relatime):
        # untouched means the mount point was not listed.
        assert os.lstat(mnt).st_atime_ns == old_atime
        os.listdir(mnt)
        assert os.lstat(mnt).st_atime_ns != old_atime  # the probe itself can fail
