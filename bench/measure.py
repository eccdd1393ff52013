"""Run one command and measure it: wall time, CPU time and peak RSS of that process alone.

``os.wait4`` returns the resource usage of exactly the child it reaps, so the peak RSS is the child's
own high-water mark, not the maximum over everything the benchmark has started so far (which is what
``getrusage(RUSAGE_CHILDREN)`` would give). Output goes to files, never pipes, so a chatty tool can
neither block on a full pipe nor get its throughput measured through our reading speed.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from dataset import walk_files

__all__ = ["CacheMode", "Measurement", "can_drop_caches", "prepare_caches", "run_measured", "warm_tree"]


@dataclass(frozen=True)
class Measurement:
    """One timed process run."""

    argv: tuple[str, ...]
    returncode: int
    wall_s: float
    user_s: float
    sys_s: float
    peak_rss_kib: int
    load_before: float
    load_after: float
    stdout_path: Path
    stderr_path: Path

    @property
    def cpu_s(self) -> float:
        """User plus system CPU seconds of the process (and any children it waited for)."""
        return self.user_s + self.sys_s

    def stdout(self) -> str:
        """The captured standard output."""
        return self.stdout_path.read_text(errors="replace")

    def stderr_tail(self, lines: int = 20) -> str:
        """The last lines of standard error, for failure messages."""
        return "\n".join(self.stderr_path.read_text(errors="replace").splitlines()[-lines:])


def run_measured(
    argv: Sequence[str], env: Mapping[str, str], log_dir: Path, name: str, cwd: Path | None = None
) -> Measurement:
    """Run ``argv`` to completion and measure it; stdout/stderr land in ``log_dir/name.{out,err}``."""
    log_dir.mkdir(parents=True, exist_ok=True)
    out_path = log_dir / f"{name}.out"
    err_path = log_dir / f"{name}.err"
    load_before = os.getloadavg()[0]
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(
            list(argv), stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=dict(env), cwd=cwd
        )
        # Reap it ourselves to get its rusage; tell Popen so it does not try to wait again.
        _pid, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
    return Measurement(
        argv=tuple(argv),
        returncode=proc.returncode,
        wall_s=wall,
        user_s=usage.ru_utime,
        sys_s=usage.ru_stime,
        peak_rss_kib=usage.ru_maxrss,  # KiB on Linux
        load_before=load_before,
        load_after=os.getloadavg()[0],
        stdout_path=out_path,
        stderr_path=err_path,
    )


CacheMode = Literal["drop", "warm"]


def can_drop_caches() -> bool:
    """Whether this process may write ``/proc/sys/vm/drop_caches`` (root, writable procfs)."""
    return os.geteuid() == 0 and os.access("/proc/sys/vm/drop_caches", os.W_OK)


def prepare_caches(mode: CacheMode) -> None:
    """Bring the page cache to the same state before every timed step.

    Always ``sync`` first, so dirty pages written by the previous step are not flushed on the next
    step's clock. With ``drop`` the clean caches are then emptied (every step starts cold); with
    ``warm`` they are left as they are (the dataset was read once before the first step).
    """
    os.sync()
    if mode == "drop":
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")


def warm_tree(root: Path) -> int:
    """Read every file under ``root`` once so it sits in the page cache; returns bytes read."""
    total = 0
    for dirpath, files in walk_files(root):
        for name in files:
            with open(os.path.join(dirpath, name), "rb", buffering=0) as f:
                while chunk := f.read(1 << 20):
                    total += len(chunk)
    return total


def claim_workdir(path: Path) -> int:
    """Hold an exclusive lock beside ``path`` for this process's life; exit with one line if taken.

    Two benchmark runs sharing a work directory would empty each other's repositories mid-run
    (each starts by removing it), which shows up as baffling tool failures rather than a clear cause.
    Returns the lock's file descriptor, kept open until the process exits.
    """
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.parent / f".{path.name}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        msg = f"{path} is in use by another benchmark run: pass --workdir DIR to run beside it"
        raise SystemExit(msg) from None
    return fd
