"""run_command: an interrupt while a hook runs takes the hook's whole process group with it."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time

import pytest

from shadowvault.snapshots import run_command


def test_interrupt_kills_the_commands_children_too() -> None:
    marker = f"sleep 3{os.getpid() % 10}.{time.monotonic_ns() % 1000}"

    def interrupt() -> None:
        time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt).start()
    with pytest.raises(KeyboardInterrupt):
        run_command(["sh", "-c", f"{marker}; echo not reached"])
    time.sleep(0.2)
    left = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True).stdout.strip()
    assert left == "", f"orphaned hook child: {left}"


def test_timeout_reports_and_kills_the_group() -> None:
    result = run_command(["sh", "-c", "sleep 5 & sleep 5"], timeout=0.3)
    assert result.returncode == -1 and "timed out" in result.stderr


def test_output_and_exit_code_are_captured() -> None:
    result = run_command(["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert (result.returncode, result.stdout, result.stderr) == (3, "out\n", "err\n")
