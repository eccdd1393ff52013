"""Command-line interface: parse arguments, build the App, dispatch, map errors to exit codes.

Thin by design: every command is a small module in ``commands/`` with
``add_arguments(parser)`` and ``run(app, args) -> int``; the work happens in
``shadowvault.engine`` and the layers below it.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from shadowvault import interrupts, kdfcache
from shadowvault.errors import ShadowvaultError

from .app import App
from .commands import COMMANDS
from .parser import CommandLine


def build_parser() -> argparse.ArgumentParser:
    """The root argument parser with every command registered (help, completion scripts)."""
    return CommandLine(COMMANDS).root


@interrupts.entry_point
def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``shadowvault`` console script; returns the exit code."""
    words = sys.argv[1:] if argv is None else list(argv)
    if argv is None:
        interrupts.install_for_script()  # a console script made by an older install calls us directly
    # Normally started by shadowvault.launcher before these modules loaded (then this finds the
    # job already running); a caller of main() gets the early key derivation here.
    kdfcache.prefetch_for_command(words, os.environ)
    cli = CommandLine(COMMANDS)
    # argparse's parse_intermixed_args restores its actions in a `finally` that fails when a signal
    # interrupts it half-way (AttributeError 'save_nargs', with a traceback): parsing takes
    # milliseconds, so a signal meanwhile is delivered right after it.
    with interrupts.held():
        args = cli.parse(words)
    if not getattr(args, "command", None):
        cli.root.print_help()
        return 2
    app = App(args)
    try:
        code: int = args._run(app, args)
        return code
    except ShadowvaultError as e:
        return _fail(app, str(e), e.exit_code)
    except BrokenPipeError:
        return 1
    except OSError as e:
        # Disk full, permission denied and the like, outside what a layer already explained.
        where = f"{os.fsdecode(e.filename)}: " if e.filename else ""
        return _fail(app, f"{where}{e.strerror or e}: check free space and permissions", 1)


def _fail(app: App, message: str, code: int) -> int:
    # Plain writes: the error path must not depend on anything that could itself fail to load.
    if app.json:
        app.emit({"message_type": "error", "message": message, "exit_code": code})
    else:
        sys.stderr.write(f"error: {message}\n")
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
