"""Running external programs (btrfs, lvcreate, zfs, mount, hook commands).

Every provider takes a ``Runner``: a callable from an argv to a
``CommandResult``. The real one runs the program; tests pass a recorder that
answers from a script, which is how LVM and ZFS are tested on machines that
have neither. Runners never raise for a failing program: the exit status is a
value, and ``check`` turns it into a ``SnapshotError`` where a provider
cannot go on.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from shadowvault.errors import SnapshotError

__all__ = ["CommandResult", "Runner", "check", "first_error_line", "run_command"]

#: Exit status reported for a program that is not installed (as shells do).
NOT_FOUND = 127


@dataclass(frozen=True)
class CommandResult:
    """What a program did: its argv, exit status and captured output."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str = ""
    stderr: str = ""

    @property
    def ok(self) -> bool:
        """True when the program exited with status 0."""
        return self.returncode == 0


Runner = Callable[[Sequence[str]], CommandResult]


def run_command(argv: Sequence[str], *, timeout: float = 600.0) -> CommandResult:
    """Run ``argv`` and capture its output; never raises for the program's failure.

    The child gets its own process group so a Ctrl-C at the terminal does not
    kill a half-done ``lvcreate`` or the ``btrfs subvolume delete`` that cleanup
    depends on; the session decides what an interrupt means.
    """
    args = tuple(argv)
    try:
        proc = subprocess.Popen(
            args,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
            process_group=0,
            stdin=subprocess.DEVNULL,
        )
    except FileNotFoundError:
        return CommandResult(args, NOT_FOUND, "", f"{args[0]}: command not found")
    except OSError as exc:
        return CommandResult(args, NOT_FOUND, "", f"{args[0]}: {exc.strerror or exc}")
    with proc:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            proc.communicate()
            return CommandResult(args, -1, "", f"{args[0]}: timed out after {timeout:g} s")
        except BaseException:
            # Interrupted while waiting (e.g. Ctrl-C during pre_snapshot): the whole group goes,
            # so a shell's children are not left running on their own.
            _kill_group(proc)
            proc.communicate()
            raise
    return CommandResult(args, proc.returncode, out, err)


def _kill_group(proc: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def first_error_line(result: CommandResult) -> str:
    """The most useful single line of a failed program's output, for one-line errors."""
    for text in (result.stderr, result.stdout):
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        if lines:
            # The last line usually states the error; earlier ones are warnings.
            return lines[-1]
    return f"exit status {result.returncode}"


def check(result: CommandResult, what: str) -> str:
    """Return stdout of a successful program, else raise ``SnapshotError`` naming ``what``."""
    if not result.ok:
        raise SnapshotError(f"{what} failed: {' '.join(result.argv)}: {first_error_line(result)}")
    return result.stdout
