"""The shared backend conformance suite against local and mem, plus local-layout specifics."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from shadowvault.repo.backends import Backend, FileType, LocalBackend, MemBackend, RetryBackend
from shadowvault.repo.backends.testsuite import CHECKS


def _local(tmp_path: Path) -> Backend:
    be = LocalBackend(tmp_path / "repo")
    be.create()
    return be


def _mem(tmp_path: Path) -> Backend:
    be = MemBackend()
    be.create()
    return be


def _retry_local(tmp_path: Path) -> Backend:
    be = RetryBackend(LocalBackend(tmp_path / "repo"), sleep=lambda _: None)
    be.create()
    return be


@pytest.mark.parametrize("make", [_local, _mem, _retry_local], ids=["local", "mem", "retry-local"])
@pytest.mark.parametrize("check", CHECKS, ids=[c.__name__ for c in CHECKS])
def test_backend_conformance(
    make: Callable[[Path], Backend], check: Callable[[Backend], None], tmp_path: Path
) -> None:
    check(make(tmp_path))


def test_local_layout_matches_restic(tmp_path: Path) -> None:
    be = LocalBackend(tmp_path / "repo")
    be.create()
    root = tmp_path / "repo"
    assert sorted(p.name for p in root.iterdir()) == ["data", "index", "keys", "locks", "snapshots"]
    assert sorted(p.name for p in (root / "data").iterdir()) == [f"{i:02x}" for i in range(256)]
    name = "ab" + "0" * 62
    be.save(FileType.PACK, name, b"pack")
    path = root / "data" / "ab" / name
    assert path.read_bytes() == b"pack"
    # Finished files are read-only, like restic's.
    assert stat.S_IMODE(path.stat().st_mode) == 0o400
    be.save(FileType.CONFIG, "config", b"cfg")
    assert (root / "config").read_bytes() == b"cfg"


def test_local_leaves_no_temp_files_and_ignores_strays(tmp_path: Path) -> None:
    be = LocalBackend(tmp_path / "repo")
    be.create()
    idx = tmp_path / "repo" / "index"
    name = "cd" * 32
    be.save(FileType.INDEX, name, b"x" * 10)
    assert [p.name for p in idx.iterdir()] == [name]
    (idx / f".tmp-{name}-deadbeef").write_bytes(b"half written")
    assert list(be.list(FileType.INDEX)) == [(name, 10)]


def test_local_save_failure_cleans_up(tmp_path: Path) -> None:
    be = LocalBackend(tmp_path / "repo")
    be.create()
    name = "ef" * 32
    be.save(FileType.SNAPSHOT, name, b"one")
    with pytest.raises(FileExistsError):
        be.save(FileType.SNAPSHOT, name, b"two")
    assert os.listdir(tmp_path / "repo" / "snapshots") == [name]


def test_local_rejects_path_tricks(tmp_path: Path) -> None:
    be = LocalBackend(tmp_path / "repo")
    for bad in ("../x", ".hidden", ""):
        with pytest.raises(ValueError):
            be.path(FileType.INDEX, bad)


class _Flaky(MemBackend):
    """Fails the first ``failures`` loads with a transient error."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    def load(self, ft: FileType, name: str, offset: int = 0, length: int | None = None) -> bytes:
        if self.failures > 0:
            self.failures -= 1
            raise ConnectionResetError("connection reset by peer")
        return super().load(ft, name, offset, length)


def test_retry_backend_retries_transient_errors_with_backoff() -> None:
    inner = _Flaky(failures=3)
    inner.save(FileType.INDEX, "aa" * 32, b"data")
    waits: list[float] = []
    reports: list[str] = []
    be = RetryBackend(
        inner,
        attempts=5,
        initial_delay=0.5,
        max_delay=1.5,
        sleep=waits.append,
        report=lambda what, exc, delay: reports.append(f"{what}: {exc}"),
    )
    assert be.load(FileType.INDEX, "aa" * 32) == b"data"
    assert waits == [0.5, 1.0, 1.5]
    assert reports[0] == f"load index/{'aa' * 32}: connection reset by peer"


def test_retry_backend_gives_up_and_passes_permanent_errors_at_once() -> None:
    waits: list[float] = []
    be = RetryBackend(_Flaky(failures=10), attempts=3, sleep=waits.append)
    with pytest.raises(ConnectionResetError):
        be.load(FileType.INDEX, "bb" * 32)
    assert len(waits) == 2
    waits.clear()
    with pytest.raises(FileNotFoundError):
        RetryBackend(MemBackend(), sleep=waits.append).stat(FileType.INDEX, "cc" * 32)
    assert waits == []


class _NetworkMem(MemBackend):
    """An in-memory store that says it is behind a network with six connections."""

    remote = True
    connections = 6


def test_restore_reads_in_parallel_over_every_connection_of_a_remote_backend() -> None:
    from shadowvault.repo import Repository

    kdf = (1024, 8, 1)
    assert Repository.init(MemBackend(), "pw", kdf=kdf).parallel_reads() == 1
    assert Repository.init(RetryBackend(_NetworkMem()), "pw", kdf=kdf).parallel_reads() == 6
