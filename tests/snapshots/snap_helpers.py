"""Helpers for the snapshot tests: loop-mounted file systems and a scripted runner."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from tests.conftest import require_binary, require_root

from shadowvault.snapshots.commands import CommandResult


def sh(*argv: str) -> str:
    """Run a command that must succeed; return its stdout."""
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, f"{argv}: {proc.stderr}"
    return proc.stdout


@contextmanager
def loop_fs(
    tmp_path: Path, fs_type: str, *, size: str = "300M", mkfs_args: Sequence[str] = ()
) -> Iterator[Path]:
    """A fresh file system in a sparse image, loop-mounted; always unmounted and detached."""
    require_root()
    require_binary(f"mkfs.{fs_type}")
    require_binary("losetup")
    image = tmp_path / f"{fs_type}.img"
    mount_point = tmp_path / f"mnt-{fs_type}"
    mount_point.mkdir()
    sh("truncate", "-s", size, str(image))
    sh(f"mkfs.{fs_type}", "-q", *mkfs_args, str(image))
    device = sh("losetup", "--find", "--show", str(image)).strip()
    try:
        sh("mount", device, str(mount_point))
        try:
            yield mount_point
        finally:
            _umount(mount_point)
    finally:
        subprocess.run(["losetup", "-d", device], capture_output=True, check=False)


def _umount(mount_point: Path) -> None:
    # Mounts made inside the fs (e.g. by a failed test) go first; retry briefly if busy.
    for _ in range(20):
        if not os.path.ismount(mount_point):
            return
        if subprocess.run(["umount", str(mount_point)], capture_output=True, check=False).returncode == 0:
            return
        time.sleep(0.1)
    subprocess.run(["umount", "-l", str(mount_point)], capture_output=True, check=False)


def dead_pid() -> int:
    """A pid that belonged to a process which has exited (and is not reused yet, most likely)."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


class ScriptedRunner:
    """A Runner that records every argv and answers from a list of (argv-prefix, result) rules.

    The first rule whose prefix matches answers; unmatched commands fail with 127
    like a missing program, so an unexpected command shows up as a failure.
    """

    def __init__(
        self, rules: Sequence[tuple[Sequence[str], CommandResult | Callable[[Sequence[str]], CommandResult]]]
    ):
        self.rules = list(rules)
        self.calls: list[list[str]] = []

    def __call__(self, argv: Sequence[str]) -> CommandResult:
        self.calls.append(list(argv))
        for prefix, answer in self.rules:
            if list(argv[: len(prefix)]) == list(prefix):
                return answer(argv) if callable(answer) else answer
        return CommandResult(tuple(argv), 127, "", f"{argv[0]}: command not found")

    def commands(self, *names: str) -> list[list[str]]:
        """Recorded calls whose program is one of ``names``."""
        return [c for c in self.calls if c[0] in names]


def ok(stdout: str = "") -> CommandResult:
    """A successful result (argv is filled in loosely: tests look at ScriptedRunner.calls)."""
    return CommandResult((), 0, stdout, "")


def fail(stderr: str, code: int = 5) -> CommandResult:
    """A failed result with the given error output."""
    return CommandResult((), code, "", stderr)
