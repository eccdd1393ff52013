"""A controlled clock and a real repository for scheduler tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from shadowvault.config import BackupSet
from shadowvault.engine.activity import ActivityLog
from shadowvault.engine.daemon import Daemon
from shadowvault.engine.scheduled import RunEnvironment, RunOutcome
from shadowvault.repo import LocalBackend, Repository
from treeutil import PASSWORD

# Cheap key derivation: these tests open the repository once per run.
KDF = (1 << 10, 8, 1)


class FakeClock:
    """Time moves only when the daemon sleeps or the test says so; ``stop_at`` ends the loop."""

    def __init__(self, start: datetime) -> None:
        self.t = start
        self.stop_at: datetime | None = None
        self.daemon: Daemon | None = None
        self.sleeps = 0

    def now(self) -> datetime:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.sleeps += 1
        self.t += timedelta(seconds=max(seconds, 1.0))
        if self.stop_at is not None and self.t >= self.stop_at and self.daemon is not None:
            self.daemon.request_stop()

    def wake(self) -> None:
        pass


def make_repo(path: Path) -> Path:
    Repository.init(LocalBackend(path), PASSWORD, kdf=KDF).close()
    return path


def make_source(path: Path, files: int = 5, size: int = 4096) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    for i in range(files):
        (path / f"f{i:04d}.dat").write_bytes(bytes([i % 256]) * size + str(i).encode())
    return path


class Harness:
    """A daemon over real sets, a real repository and a real activity log, driven by FakeClock."""

    def __init__(self, tmp: Path, sets: list[BackupSet], start: datetime, activity: ActivityLog) -> None:
        self.repo = tmp / "repo"
        if not self.repo.exists():
            make_repo(self.repo)
        self.sets = sets
        self.clock = FakeClock(start)
        self.outcomes: list[RunOutcome] = []
        self.lines: list[str] = []
        self.opened: list[int] = []
        self.active = 0
        self.log_hooks: list[Any] = []
        self.env = RunEnvironment(
            open_repo=self._open,
            activity=activity,
            host="testhost",
            log=self._log,
            excluded_paths=[str(self.repo)],
        )
        self.daemon = Daemon(lambda: self.sets, self.env, clock=self.clock, on_run=self.outcomes.append)
        self.clock.daemon = self.daemon

    def _open(self) -> Repository:
        # One session at a time: nothing of ours is open and no lock is held when one opens.
        assert self.active == 0, "two sessions into one repository at once"
        assert not list((self.repo / "locks").iterdir()), "a lock is still held"
        self.opened.append(1)
        repo = Repository.open(LocalBackend(self.repo), PASSWORD)
        self.active += 1
        close = repo.close

        def closing() -> None:
            self.active -= 1
            close()

        repo.close = closing  # type: ignore[method-assign]
        return repo

    def _log(self, line: str) -> None:
        self.lines.append(f"{self.clock.now().isoformat()} {line}")
        for hook in self.log_hooks:
            hook(line)

    def run_until(self, end: datetime) -> None:
        self.clock.stop_at = end
        self.daemon.run()


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]
