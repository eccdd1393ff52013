"""A child process's stdout, streamed through the chunker into the repository.

No temporary file: the dump tool writes into a pipe, ``TeeReader`` hands what arrives to the
FastCDC chunker and each chunk to the session's ``submit`` (which blocks while 16 MiB of blobs
are in flight), so memory stays bounded whatever the dump's size. The same bytes are copied to
a verifier's stdin when the tool has one (``pg_restore --list`` reads the archive's header and
table of contents from them, then closes the pipe), and the last bytes are kept for trailer
checks (``-- Dump completed``). Outcomes of the tool are values (``StreamResult``); only the
session's own errors (repository) propagate.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import IO, Any

__all__ = [
    "ChildProcess",
    "DumpJob",
    "StreamResult",
    "TeeReader",
    "bound_malloc_arenas",
    "database_of",
    "file_name_of",
    "run_tool",
    "stream_dump",
]

_TAIL_BYTES = 4096
_M_ARENA_MAX = -8  # glibc mallopt parameters
_M_MMAP_THRESHOLD = -3
_ARENAS = 2
_MMAP_THRESHOLD = 1024 * 1024
_STDERR_LINES = 20


def bound_malloc_arenas() -> None:
    """Keep glibc from holding freed chunk and dump buffers for the rest of the process (every backup).

    Two settings, both measured on dumps streamed through two blob workers: at most two malloc
    arenas (each thread otherwise gets its own, and the megabyte-sized chunk, compressed and
    sealed copies it frees stay resident there: 146 -> 71 MiB for a 52 MiB dump), and a fixed
    1 MiB mmap threshold (glibc otherwise raises it after the first large free, so chunks and
    packs come from the heap and its fragments stay: 143 -> 98 MiB for a 271 MiB dump, wall time
    within noise). Not glibc (musl): nothing to do.
    """
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt(_M_ARENA_MAX, _ARENAS)
        libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)
    except (OSError, AttributeError):
        pass


def file_name_of(database: str, ext: str) -> str:
    """The dump's file name: a database name may hold ``/`` (PostgreSQL), never a tree node."""
    return database.replace("%", "%25").replace("/", "%2F") + ext


def database_of(file_name: str, ext: str) -> str:
    """The inverse of :func:`file_name_of`."""
    return file_name[: -len(ext)].replace("%2F", "/").replace("%25", "%")


@dataclass(frozen=True)
class DumpJob:
    """One file a server's tool writes to stdout: ``database`` "" is the server's globals."""

    database: str
    file_name: str
    argv: list[str]
    verify_argv: list[str] | None = None  # fed the stored bytes on stdin; non-zero exit → suspect
    trailer: bytes | None = None  # must be in the stream's last bytes, else suspect


@dataclass
class StreamResult:
    """What streaming one dump gave: blob futures, size, the tool's exit and its verification."""

    chunks: list[Future[bytes]]
    size: int
    returncode: int
    stderr: list[str]
    duration: float
    verify_returncode: int | None = None
    verify_stderr: list[str] = field(default_factory=list)
    tail: bytes = b""


class ChildProcess:
    """A tool with stdout piped (or discarded) and the last lines of its stderr kept by a thread.

    stderr is drained all the time so a chatty tool never blocks on a full pipe while we read
    its stdout; only the last lines are kept (they carry the error that matters).
    """

    def __init__(
        self, argv: list[str], env: Mapping[str, str], *, stdin: int | None = None, stdout: int | None = None
    ) -> None:
        self.argv = argv
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL if stdin is None else stdin,
            stdout=subprocess.PIPE if stdout is None else stdout,
            stderr=subprocess.PIPE,
            env=dict(env),
            bufsize=0,
            close_fds=True,
        )
        self._lines: deque[str] = deque(maxlen=_STDERR_LINES)
        self._drain = threading.Thread(target=self._read_stderr, name="dump-stderr", daemon=True)
        self._drain.start()

    def _read_stderr(self) -> None:
        err = self.proc.stderr
        assert err is not None
        for raw in iter(err.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip()
            if line:
                self._lines.append(line)
        err.close()

    @property
    def stdout(self) -> IO[bytes]:
        """The child's stdout pipe (unbuffered)."""
        assert self.proc.stdout is not None
        return self.proc.stdout

    def wait(self) -> int:
        """Wait for the exit; the stderr thread is joined so the tail is complete."""
        code = self.proc.wait()
        self._drain.join(timeout=10)
        return code

    def stderr_tail(self) -> list[str]:
        """The last lines the tool wrote to stderr."""
        return list(self._lines)

    def kill(self) -> None:
        """End the tool (on our own error or Ctrl-C) and reap it."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()


class TeeReader:
    """``readinto`` over a pipe that counts bytes, keeps the tail and copies to a verifier."""

    def __init__(self, source: IO[bytes], copy_to: IO[bytes] | None) -> None:
        self._fd = source.fileno()
        self._copy = copy_to.fileno() if copy_to is not None else None
        self.total = 0
        self.tail = b""

    def readinto(self, b: memoryview) -> int:
        n = os.readv(self._fd, [b])
        if n:
            data = b[:n]
            self.total += n
            self.tail = (self.tail + bytes(data[-_TAIL_BYTES:]))[-_TAIL_BYTES:]
            if self._copy is not None:
                self._tee(data)
        return n

    def _tee(self, data: memoryview) -> None:
        assert self._copy is not None
        try:
            while data:
                written = os.write(self._copy, data)
                data = data[written:]
        except BrokenPipeError:
            # The verifier read what it checks (pg_restore --list stops after the table of
            # contents) and exited; its exit code is the verdict.
            self._copy = None


def stream_dump(
    job: DumpJob,
    env: Mapping[str, str],
    chunker: Any,
    submit: Callable[[bytes], Future[bytes]],
    on_progress: Callable[[int], None] | None = None,
) -> StreamResult:
    """Run ``job``'s tool and store its stdout as blobs; the tool's failure is in the result."""
    start = time.monotonic()
    tool = ChildProcess(job.argv, env)
    verifier = (
        ChildProcess(job.verify_argv, env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
        if job.verify_argv
        else None
    )
    reader = TeeReader(tool.stdout, verifier.proc.stdin if verifier else None)
    chunks: list[Future[bytes]] = []
    try:
        for chunk in chunker.cut_stream(reader):
            chunks.append(submit(bytes(chunk.data)))
            if on_progress is not None:
                on_progress(reader.total)
    except BaseException:
        tool.kill()
        if verifier is not None:
            verifier.kill()
        raise
    code = tool.wait()
    tool.stdout.close()
    result = StreamResult(chunks, reader.total, code, tool.stderr_tail(), 0.0, tail=reader.tail)
    if verifier is not None:
        stdin = verifier.proc.stdin
        assert stdin is not None
        with contextlib.suppress(BrokenPipeError):
            stdin.close()
        result.verify_returncode = verifier.wait()
        result.verify_stderr = verifier.stderr_tail()
    result.duration = time.monotonic() - start
    return result


def run_tool(argv: list[str], env: Mapping[str, str], timeout: float = 60.0) -> tuple[int, str, list[str]]:
    """Run a short query tool: ``(exit code, stdout text, last stderr lines)``."""
    try:
        proc = subprocess.run(
            argv, stdin=subprocess.DEVNULL, capture_output=True, env=dict(env), timeout=timeout, check=False
        )
    except FileNotFoundError:
        return 127, "", [f"{argv[0]}: command not found (install the client tools)"]
    except subprocess.TimeoutExpired:
        return 124, "", [f"{os.path.basename(argv[0])} did not answer within {timeout:g} s"]
    lines = [ln for ln in proc.stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
    return proc.returncode, proc.stdout.decode("utf-8", "replace"), lines[-_STDERR_LINES:]
