"""Repository locks: conflicts, staleness, refresh, release, and restic honouring our locks."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest
from tests.conftest import require_binary
from tests.repo.repo_helpers import FAST_KDF, PASSWORD, restic

from shadowvault.errors import RepoLockedError
from shadowvault.repo import FileType, LocalBackend, MemBackend, Repository
from shadowvault.repo.files import jsonfmt
from shadowvault.repo.lock import STALE_AFTER_NS, LockInfo, RepoLock, is_stale, remove_stale_locks

NO_WAIT = {"recheck_delay": 0.0}


@pytest.fixture
def repo() -> Repository:
    return Repository.init(MemBackend(), PASSWORD, kdf=FAST_KDF)


def _plant(repo: Repository, **fields: object) -> str:
    """Write a lock file as another client would."""
    base: dict[str, object] = {
        "time": jsonfmt.now_ns(),
        "exclusive": False,
        "hostname": "other-host",
        "username": "someone",
        "pid": 4242,
    }
    base.update(fields)
    info = LockInfo(**base)  # type: ignore[arg-type]
    return repo.save_unpacked(FileType.LOCK, info.to_json()).hex()


def _locks(repo: Repository) -> list[str]:
    return [n for n, _ in repo.backend.list(FileType.LOCK)]


def test_shared_locks_coexist_and_are_removed(repo: Repository) -> None:
    with repo.lock(**NO_WAIT), repo.lock(**NO_WAIT):
        assert len(_locks(repo)) == 2
    assert _locks(repo) == []


def test_exclusive_refuses_any_other_lock(repo: Repository) -> None:
    _plant(repo, exclusive=False)
    with pytest.raises(RepoLockedError) as info, repo.lock(exclusive=True, **NO_WAIT):
        pass
    msg = str(info.value)
    assert "PID 4242 on other-host by someone" in msg and "\n" not in msg
    assert len(_locks(repo)) == 1  # our attempt left nothing behind


def test_shared_refuses_an_exclusive_lock(repo: Repository) -> None:
    _plant(repo, exclusive=True)
    with pytest.raises(RepoLockedError, match="locked exclusively by PID 4242"), repo.lock(**NO_WAIT):
        pass


def test_exclusive_held_by_us_blocks_a_second_client(repo: Repository) -> None:
    with repo.lock(exclusive=True, **NO_WAIT):
        other = Repository.open(repo.backend, PASSWORD)
        with pytest.raises(RepoLockedError), other.lock(**NO_WAIT):
            pass


def test_work_done_during_the_settling_pause_still_meets_the_recheck(repo: Repository) -> None:
    """``meanwhile`` replaces part of the pause; a rival lock written during it is still found,
    and our lock is removed when the recheck (or the work) fails."""
    ran: list[float] = []
    start = time.monotonic()
    with repo.lock(exclusive=False, recheck_delay=0.3, meanwhile=lambda: ran.append(time.monotonic())):
        held_after = time.monotonic() - start
        assert len(_locks(repo)) == 1
    assert ran and ran[0] - start < 0.3  # it ran inside the pause ...
    assert held_after >= 0.3  # ... and the pause was still honoured in full

    def rival() -> None:
        _plant(repo, exclusive=True, hostname="other-host")

    with pytest.raises(RepoLockedError), repo.lock(exclusive=False, recheck_delay=0.05, meanwhile=rival):
        pass
    assert len(_locks(repo)) == 1  # only the rival's: ours was removed
    for name in _locks(repo):
        repo.backend.remove(FileType.LOCK, name)

    def broken() -> None:
        raise ValueError("index unreadable")

    with pytest.raises(ValueError), repo.lock(exclusive=False, recheck_delay=0.05, meanwhile=broken):
        pass
    assert _locks(repo) == []


def test_stale_locks_are_ignored_and_removable(repo: Repository) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    here = socket.gethostname()
    old = _plant(repo, exclusive=True, time=jsonfmt.now_ns() - STALE_AFTER_NS - 10**9)
    gone = _plant(repo, exclusive=True, hostname=here, pid=dead.pid)
    live_elsewhere = _plant(repo, exclusive=False)
    with repo.lock(**NO_WAIT):
        pass
    assert sorted(remove_stale_locks(repo)) == sorted([old, gone])
    assert _locks(repo) == [live_elsewhere]


def test_stale_rule() -> None:
    now = 10**18
    info = LockInfo(now - 10**9, True, "h", "u", 1)
    assert not is_stale(info, now=now, hostname="other", alive=None)
    assert not is_stale(info, now=now, hostname="h", alive=True)
    assert is_stale(info, now=now, hostname="h", alive=False)
    assert is_stale(LockInfo(now - STALE_AFTER_NS - 1, False, "x", "u", 1), now=now, hostname="h", alive=None)


def test_our_own_live_process_lock_is_not_stale(repo: Repository) -> None:
    _plant(repo, exclusive=True, hostname=socket.gethostname(), pid=os.getpid())
    with pytest.raises(RepoLockedError), repo.lock(**NO_WAIT):
        pass


def test_refresh_replaces_the_lock_file_with_a_newer_one(repo: Repository) -> None:
    held = RepoLock(repo, exclusive=False, refresh_interval=0.05, recheck_delay=0.0)
    held.acquire()
    try:
        first = held.lock_id
        first_time = json.loads(repo.load_unpacked(FileType.LOCK, first or ""))["time"]
        deadline = time.monotonic() + 5
        while held.lock_id == first and time.monotonic() < deadline:
            time.sleep(0.02)
        assert held.lock_id != first and held.refresh_error is None
        names = _locks(repo)
        assert len(names) == 1 and names[0] == held.lock_id
        newer = json.loads(repo.load_unpacked(FileType.LOCK, names[0]))["time"]
        assert jsonfmt.parse_time(newer) > jsonfmt.parse_time(first_time)
    finally:
        held.release()
    assert _locks(repo) == []


def test_lock_file_is_restic_readable_and_restic_respects_it(tmp_path: Path) -> None:
    require_binary("restic")
    path = tmp_path / "repo"
    repo = Repository.init(LocalBackend(path), PASSWORD, kdf=FAST_KDF)
    with repo.lock(exclusive=True, **NO_WAIT):
        (name,) = _locks(repo)
        doc = json.loads(restic(path, "--no-lock", "cat", "lock", name).stdout)
        assert doc["exclusive"] is True and doc["pid"] == os.getpid()
        result = restic(path, "check", check=False)
        assert result.returncode != 0 and "locked" in result.stderr
    assert "no errors were found" in restic(path, "check").stdout
