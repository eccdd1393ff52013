"""Real helper processes for the open-file tests: writers, holders, SQLite committers.

Each child is a separate Python process that prints ``ready`` once it has done its
setup (opened the file, mapped it, written once), so a test can start its read at a
known point. ``Child`` is a context manager that always kills and reaps the process.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import textwrap
import time
from types import TracebackType

SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "src")

# Sets the process's command name so tests can check the writer is named exactly.
SET_COMM = "open('/proc/self/comm', 'w').write(sys.argv[1])\n"


class Child:
    """A child Python process running ``code`` (with ``sys.argv[1]`` = its command name)."""

    def __init__(
        self,
        code: str,
        *args: str,
        comm: str = "svwriter",
        python: str = sys.executable,
        user: int | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        body = "import os, sys, time\n" + SET_COMM + textwrap.dedent(code)
        self.proc = subprocess.Popen(
            [python, "-c", body, comm, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            user=user,
            group=user,
            extra_groups=[] if user is not None else None,
            env=env,
        )
        self.pid = self.proc.pid
        self._buf = b""
        self.comm = comm

    def line(self, timeout: float = 10.0) -> str:
        """Next stdout line, ``""`` at EOF (fails the test after ``timeout`` seconds)."""
        # Own line buffer over the raw fd: a buffered reader could swallow several lines
        # into its buffer, and select() would then wait for data that already arrived.
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([fd], [], [], max(0.0, left))
            if not ready:
                raise AssertionError(f"child {self.pid} said nothing within {timeout} s")
            chunk = os.read(fd, 4096)
            if not chunk:
                rest, self._buf = self._buf, b""
                return rest.decode().strip()
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return line.decode().strip()

    def wait_ready(self, timeout: float = 10.0) -> None:
        """Block until the child printed ``ready``."""
        got = self.line(timeout)
        assert got == "ready", f"child {self.pid} said {got!r} instead of ready"

    def tell(self, text: str) -> None:
        """Send one line on stdin (children waiting on ``input()`` proceed)."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(text.encode() + b"\n")
        self.proc.stdin.flush()

    def stop(self) -> None:
        """Kill, reap and close the pipes."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()

    def __enter__(self) -> Child:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


HOLD_OPEN_FOR_WRITING = """
f = open(sys.argv[2], "ab")
print("ready", flush=True)
time.sleep(float(sys.argv[3]) if len(sys.argv) > 3 else 60)
f.close()
print("closed", flush=True)
time.sleep(60)
"""

APPEND_LOOP = """
f = open(sys.argv[2], "ab", buffering=0)
f.write(b"first line\\n")
print("ready", flush=True)
while True:
    f.write(b"another line of log output\\n")
    time.sleep(0.005)
"""


def slow_read(att: object, bufsize: int = 4096, pause: float = 0.0) -> bytes:
    """Read an attempt to the end with small buffers and a pause between reads (widens races)."""
    out = bytearray()
    buf = bytearray(bufsize)
    readinto = att.readinto  # type: ignore[attr-defined]
    while True:
        n = readinto(memoryview(buf))
        if n == 0:
            return bytes(out)
        out += buf[:n]
        if pause:
            time.sleep(pause)


def wait_until(cond: object, timeout: float = 10.0, step: float = 0.02) -> None:
    """Poll ``cond()`` until true or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not cond():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(step)
