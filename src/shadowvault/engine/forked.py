"""Forked worker processes: the fork, the first handshake and the reaping that ``procread`` (a
backup's readers) and ``restore_procs`` (a restore's writers) share.

A worker is forked with a connection (``multiprocessing`` ``Pipe``, a socket pair) and runs its
``serve`` function until that closes; it never returns into the caller's frames (``os._exit``), so
no ``finally`` or ``atexit`` of the session runs twice. It closes the session's ends of the
connections of the workers forked before it, so that each worker sees its own connection close when
the session ends or dies.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import time
from collections.abc import Callable, Iterable
from multiprocessing.connection import Connection, Pipe

__all__ = ["READY", "fork_worker", "handshake", "reap"]

READY = b"ready"
"""What a worker sends once it has done its first piece of work."""
_HANDSHAKE_MS = 10_000
_EXIT_WAIT = 5.0


def fork_worker(serve: Callable[[Connection], None], others: Iterable[Connection]) -> tuple[int, Connection]:
    """Fork a worker running ``serve(its end of the connection)``; (pid, the session's end)."""
    ours, theirs = Pipe()
    pid = os.fork()
    if pid == 0:  # the worker: never returns into the session's frames
        code = 0
        try:
            ours.close()
            for conn in others:
                conn.close()
            serve(theirs)
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    theirs.close()
    return pid, ours


def handshake(pid: int, conn: Connection) -> bool:
    """Wait for the worker's ``READY``. A lock another thread of the session held at the fork (in
    OpenSSL, say) would hang the worker in its first piece of work: it is then killed (False), and
    the session does that work itself, instead of waiting for it forever."""
    ready = select.poll()
    ready.register(conn.fileno(), select.POLLIN)
    try:
        if ready.poll(_HANDSHAKE_MS) and conn.recv_bytes() == READY:
            return True
    except (EOFError, OSError):
        pass
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    return False


def reap(pids: Iterable[int]) -> None:
    """Wait for workers whose connections were closed; one still there after 5 s is killed."""
    deadline = time.monotonic() + _EXIT_WAIT
    for pid in pids:
        while True:
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                break
            if done:
                break
            if time.monotonic() > deadline:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                break
            time.sleep(0.01)
