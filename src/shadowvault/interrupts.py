"""SIGINT and SIGTERM: one clean ending, whatever the moment they arrive.

The rule the program keeps: an interrupted run prints one line (``interrupted``), leaves no lock in
the repository, closes its activity-log session as ``interrupted``, and exits 130 (SIGINT) or 143
(SIGTERM) — never a traceback, never death by the default action.

How:

* :func:`install` puts one handler on both signals. The first signal of a run raises
  :class:`Interrupted` in the main thread (a ``KeyboardInterrupt``, so every ``except
  KeyboardInterrupt`` and ``finally`` on the way out does its cleanup, and ``except Exception``
  never swallows it). Later signals are ignored, so the cleanup they would cut short finishes.
* In the program (``python -m shadowvault`` or the ``shadowvault`` script: ``install(program=True)``
  runs before the heavy imports), a signal that arrives while no command runs — still importing, or
  after the command returned and its output was flushed — has nothing to clean up: the handler
  writes the line and ends the process at once with the code.
* :func:`entry_point` wraps ``cli.main``: it turns the interruption into the line and the code.
* :func:`held` defers the signals over a few statements that must not be split (a lock file
  written but not yet remembered, a SQLite transaction begun but not ended); they are delivered
  when the block ends. Any layer may use it (this module uses the standard library only).
* An ``Interrupted`` raised where Python can only print it and go on (a ``__del__``, a weakref
  callback) is not lost: the unraisable hook hides it and sends the signal again.

Handlers can only be set from the main thread; elsewhere these functions do nothing, and signals
never interrupt other threads anyway.
"""

from __future__ import annotations

import _thread
import functools
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from types import FrameType
from typing import Any, ParamSpec

__all__ = ["Interrupted", "entry_point", "exit_code", "held", "install", "install_for_script"]

SIGNALS = (signal.SIGINT, signal.SIGTERM)
_MESSAGE = b"interrupted\n"
_REDELIVERIES = 5
_REDELIVERY_DELAY = 0.02

P = ParamSpec("P")


class Interrupted(KeyboardInterrupt):
    """The run was told to stop by ``signum``; ``exit_code`` is 128 + signum (130, 143)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.exit_code = 128 + signum


class _State:
    def __init__(self) -> None:
        self.installed = False
        self.program = False
        self.depth = 0  # entry points running
        self.received: int | None = None
        self.redelivered = 0
        self.previous: dict[int, Any] = {}
        self.previous_hook: Callable[[Any], object] | None = None


_s = _State()


def exit_code(exc: BaseException) -> int:
    """130 for Ctrl-C (a plain KeyboardInterrupt too), 143 for SIGTERM."""
    return int(getattr(exc, "exit_code", 128 + signal.SIGINT))


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _handler(signum: int, frame: FrameType | None) -> None:
    if _s.received is not None:
        return  # one interruption per run: the cleanup it started must not be cut short
    _s.received = signum
    if _s.program and _s.depth == 0:
        # Importing, or the command's work is done and flushed: nothing to clean up.
        os.write(2, _MESSAGE)
        os._exit(128 + signum)
    raise Interrupted(signum)


def _unraisable(hook_args: Any) -> None:
    exc = getattr(hook_args, "exc_value", None)
    if isinstance(exc, Interrupted):
        # Raised inside a finaliser, where Python would print it and carry on: ask again.
        if _s.redelivered < _REDELIVERIES and _s.received == exc.signum:
            _s.redelivered += 1
            _s.received = None
            # From another thread and a moment later, so it lands after this hook returned
            # (raise_signal here would run the handler inside the hook).
            _thread.start_new_thread(_send_later, (exc.signum,))
        return
    if _s.previous_hook is not None:
        _s.previous_hook(hook_args)


def _send_later(signum: int) -> None:
    time.sleep(_REDELIVERY_DELAY)
    os.kill(os.getpid(), signum)


def install(*, program: bool = False) -> bool:
    """Handle SIGINT and SIGTERM from now on; True if this call installed the handlers.

    ``program``: this process is the shadowvault program, so a signal outside a command ends it
    at once (see the module docstring). A library caller leaves it False.
    """
    if not _main_thread():
        return False
    _s.program = _s.program or program
    if _s.installed:
        return False
    _s.previous = {sig: signal.signal(sig, _handler) for sig in SIGNALS}
    _s.previous_hook = sys.unraisablehook
    sys.unraisablehook = _unraisable
    _s.installed = True
    _s.received = None
    _s.redelivered = 0
    return True


def install_for_script() -> None:
    """``install(program=True)`` when this process is the ``shadowvault`` console script."""
    if os.path.basename(sys.argv[0]) == "shadowvault":
        install(program=True)


def _uninstall() -> None:
    for sig, handler in _s.previous.items():
        if handler is not None:
            signal.signal(sig, handler)
    if _s.previous_hook is not None:
        sys.unraisablehook = _s.previous_hook
    _s.installed = False
    _s.previous = {}
    _s.previous_hook = None


def _report(exc: BaseException) -> int:
    with suppress(OSError, ValueError):
        sys.stdout.flush()
    os.write(2, _MESSAGE)
    return exit_code(exc)


def _finish() -> None:
    """Leave an entry point: flush the output; at depth 0 the program's handler ends the process
    on a signal from now on."""
    for stream in (sys.stdout, sys.stderr):
        with suppress(OSError, ValueError):
            stream.flush()
    _s.depth -= 1


def entry_point(fn: Callable[P, int]) -> Callable[P, int]:
    """Wrap a command-line ``main`` so an interruption at any moment ends in one line and its code."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> int:
        installed_here = install()
        if _s.depth == 0 and not _s.program:
            _s.received = None  # a library caller running main() again after an interruption
        _s.depth += 1
        left = False
        # The first signal raises once; later ones are ignored, so the except branch runs to its
        # end. A signal during the leaving is delivered after it: the program's handler then
        # ends the process with the code, a library caller's handler does what it always does.
        try:
            try:
                code = fn(*args, **kwargs)
            except SystemExit:  # argparse's --help and usage errors
                with held():
                    left = True
                    _finish()
                raise
            with held():
                left = True
                _finish()
        except KeyboardInterrupt as exc:
            code = _report(exc)
            if not left:
                with held():
                    left = True
                    _finish()
        if installed_here and not _s.program:
            _uninstall()  # a library caller gets its own handlers back
            _s.received = None
        return code

    return wrapper


@contextmanager
def held() -> Iterator[None]:
    """Defer SIGINT/SIGTERM over the block; a signal that came meanwhile is delivered after it.

    For a few statements that must not be separated (write a lock file, then remember its name).
    Outside the main thread the block simply runs: signals are only ever handled there.
    """
    if not _main_thread():
        yield
        return
    pending: list[int] = []

    def note(signum: int, frame: FrameType | None) -> None:
        if signum not in pending:
            pending.append(signum)

    previous = {sig: signal.signal(sig, note) for sig in SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        for signum in pending:
            signal.raise_signal(signum)
