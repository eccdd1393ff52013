"""`shadowvault help [COMMAND] [--man]`: a command's help, or the whole manual page."""

from __future__ import annotations

import argparse

from shadowvault.errors import UsageError

from ..app import App

HELP = "show the help of a command, or print the manual page (--man)"
REPOSITORY = False
"""Never opens a repository."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    """An optional command name, or --man."""
    p.add_argument("topic", nargs="?", metavar="COMMAND", help="the command to explain (default: all)")
    p.add_argument(
        "--man",
        action="store_true",
        help="print the manual page (roff) generated from the parser: `shadowvault help --man | man -l -`",
    )


def run(app: App, args: argparse.Namespace) -> int:
    """Print the help text or the page to stdout."""
    # Imported here: the command registry imports this module, and the parser imports the registry.
    from shadowvault.config.schema import closest

    from ..commands import COMMANDS
    from ..manpage import manpage
    from ..parser import CommandLine

    cli = CommandLine(COMMANDS)
    if args.man:
        if args.topic:
            raise UsageError("help --man prints the page of every command: leave out the command name")
        app.out.file.write(manpage(cli.root, dict(cli.parsers), COMMANDS))
        return 0
    if args.topic is None:
        cli.root.print_help()
        return 0
    if args.topic not in COMMANDS:
        near = closest(args.topic, list(COMMANDS))
        hint = f": did you mean {near!r}?" if near else ""
        raise UsageError(f"unknown command {args.topic!r}{hint} (see shadowvault --help)")
    cli.command_parser(args.topic).print_help()
    return 0
