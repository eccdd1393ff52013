"""Issue 16: `--limit-upload` / `--limit-download` (KiB/s, restic's global options) hold every
command's repository traffic to the rate: the token bucket on its own (a fake clock), the wrapper
around a backend, and real backups and restores timed against a local repository that restic checks."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from shadowvault import kdfcache
from shadowvault.cli import parser
from shadowvault.repo.backends.base import FileType, innermost
from shadowvault.repo.backends.mem import MemBackend
from shadowvault.repo.backends.open import open_backend
from shadowvault.repo.backends.options import BackendOptions
from shadowvault.repo.backends.ratelimit import RateLimitBackend, TokenBucket
from shadowvault.repo.location import parse_location
from treeutil import restic, sv


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_bucket_allows_one_second_of_burst_then_holds_to_the_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(1000, clock=clock, sleep=clock.sleep)
    assert bucket.take(1000) == 0.0  # the burst
    assert bucket.take(500) == 0.5
    # A request far larger than the burst goes into debt and sleeps it off (a whole pack).
    assert bucket.take(16_000) == 16.0
    clock.now += 10.0  # idle time refills at most one second's worth
    assert bucket.take(1000) == 0.0
    assert bucket.take(1) > 0.0


def test_bucket_is_shared_by_threads() -> None:
    # Real clock: 4 threads × 25 takes of 1 KiB against 20 KiB/s with a 20 KiB burst: 100 KiB take
    # at least (100 - 20) / 20 = 4 s in total, whichever thread sleeps.
    bucket = TokenBucket(20 * 1024)
    start = time.monotonic()

    def worker() -> None:
        for _ in range(25):
            bucket.take(1024)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert time.monotonic() - start >= 3.9


def test_wrapper_limits_saves_and_loads_and_is_found_below() -> None:
    clock = FakeClock()
    up = TokenBucket(1000, clock=clock, sleep=clock.sleep)
    down = TokenBucket(2000, clock=clock, sleep=clock.sleep)
    mem = MemBackend()
    b = RateLimitBackend(mem, upload=up, download=down)
    b.save(FileType.SNAPSHOT, "a" * 64, b"x" * 3000)
    assert clock.slept == [2.0]
    assert b.load(FileType.SNAPSHOT, "a" * 64) == b"x" * 3000
    assert clock.slept == [2.0, 0.5]
    assert b.load(FileType.SNAPSHOT, "a" * 64, 0, 10) == b"x" * 10
    assert list(b.list(FileType.SNAPSHOT)) == [("a" * 64, 3000)]
    assert innermost(b) is mem


def test_open_backend_wraps_only_when_a_limit_is_given(tmp_path: Path) -> None:
    loc = parse_location(str(tmp_path))
    assert not isinstance(open_backend(loc, BackendOptions()), RateLimitBackend)
    limited = open_backend(loc, BackendOptions(limit_upload=10))
    assert isinstance(limited, RateLimitBackend)
    assert limited.upload is not None and limited.upload.rate == 10 * 1024
    assert limited.download is None


def test_kdfcache_skips_the_values_of_every_global_option() -> None:
    # kdfcache runs before the parser is imported and keeps its own copy of the list.
    assert kdfcache._VALUE_OPTIONS == parser._VALUE_OPTIONS


def test_limited_backup_and_restore_take_at_least_size_over_rate(tmp_path: Path) -> None:
    repo, src = tmp_path / "repo", tmp_path / "src"
    src.mkdir()
    mib = 12
    (src / "random.bin").write_bytes(os.urandom(mib * 1024 * 1024))  # incompressible
    sv("init", repo=repo)
    limit = 1024  # KiB/s: 12 MiB take ≥ 11 s (one second's worth is the burst); unlimited: ~5 s here
    start = time.monotonic()
    sv("backup", str(src), "--limit-upload", str(limit), repo=repo)
    took = time.monotonic() - start
    assert took >= (mib * 1024 - limit) / limit * 0.95, (
        f"backup of {mib} MiB at {limit} KiB/s took {took:.1f} s"
    )
    restic("check", "--read-data", repo=repo)

    start = time.monotonic()
    sv("--limit-download", str(limit), "restore", "latest", "--target", str(tmp_path / "r"), repo=repo)
    took = time.monotonic() - start
    assert took >= (mib * 1024 - limit) / limit * 0.95, (
        f"restore of {mib} MiB at {limit} KiB/s took {took:.1f} s"
    )
    assert (tmp_path / "r" / str(src).lstrip("/") / "random.bin").read_bytes() == (
        src / "random.bin"
    ).read_bytes()


def test_bad_limits_are_refused_with_the_schema_range(tmp_path: Path) -> None:
    p = sv("snapshots", "--limit-upload", "-1", repo=tmp_path, check=False)
    assert p.returncode == 2
    assert "--limit-upload: -1 is out of range: allowed ≥ 0" in p.stderr
    assert "Traceback" not in p.stderr
    p = sv("completion", "bash", "--limit-download", "5", check=False)
    assert p.returncode == 2 and "does not apply" in p.stderr
