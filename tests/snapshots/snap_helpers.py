"""Helpers for the snapshot tests: loop-mounted file systems and a scripted runner."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence

from shadowvault.snapshots.commands import CommandResult


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
