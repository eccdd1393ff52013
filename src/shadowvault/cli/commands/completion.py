"""`shadowvault completion bash|zsh|fish`: print a shell completion script."""

from __future__ import annotations

import argparse

from ..app import App
from ..completion import SHELLS, script

HELP = "print a shell completion script (bash, zsh or fish)"
REPOSITORY = False
"""Never opens a repository."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The shell."""
    p.add_argument(
        "shell",
        choices=SHELLS,
        help="bash: source it or put it in /etc/bash_completion.d/shadowvault; "
        "zsh: save it as _shadowvault on $fpath; fish: save it in ~/.config/fish/completions/",
    )


def run(app: App, args: argparse.Namespace) -> int:
    """Write the script to stdout."""
    # Imported here: the command registry imports this module, and the parser imports the registry.
    from ..commands import COMMANDS
    from ..parser import CommandLine

    cli = CommandLine(COMMANDS)
    app.out.file.write(script(cli.root, dict(cli.parsers), args.shell))
    return 0
