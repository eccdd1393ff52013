"""The command line: global options anywhere, options after positionals, suggestions on typos.

Why argparse + ``rich-argparse`` rather than click/typer/cyclopts: every command is already a module
with ``add_arguments(parser)`` + ``run(app, args)``, and other work adds commands in that shape; a
framework would rewrite all of them and their tests. argparse lacks three things people expect, and
this module adds them:

* **Global options anywhere** (``shadowvault --repo R snapshots`` as well as after the command): the
  words before the command are parsed by a parser holding only the global options; the command's
  own parser holds them too. Both use ``SUPPRESS`` defaults, so a value given before the command is
  not reset by the command's parser; the defaults are filled in afterwards.
* **Options after positionals** (``ls latest --long PATH``): the command's arguments are parsed with
  ``parse_intermixed_args``, which argparse cannot do for a parser with sub-parsers; hence the split.
* **Suggestions**: an unknown command or option, or a value outside a list of choices, gets "did
  you mean …?", and an error in a command prints that command's usage, not the top-level one.

``--help`` of every command ends with the environment variables it reads and its exit codes.
Flags that override a backup-set option take their name, choices, range and default from
``config.schema.OPTIONS`` (:func:`schema_option`), so those are stated once.
"""

from __future__ import annotations

import argparse
import functools
import re
import sys
from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import Any, NoReturn

from shadowvault import __version__
from shadowvault.config.schema import (
    CONNECTION_OPTIONS,
    OPTIONS,
    Kind,
    OptionSpec,
    check_value,
    closest,
    default_value,
    toml_repr,
)

from .app import ENV_CONFIG, ENV_REPOSITORY
from .password import ENV_PASSWORD, ENV_PASSWORD_COMMAND, ENV_PASSWORD_FILE

GLOBAL_DEFAULTS: dict[str, Any] = {
    "repo": None,
    "password_file": None,
    "password_command": None,
    "config": None,
    "json": False,
    "quiet": False,
    "verbose": 0,
    **{key: default_value(key) for key in CONNECTION_OPTIONS},
}
"""Every global option's destination and its value when not given."""

_LIMIT_FLAGS = frozenset(spec.cli_flag for spec in CONNECTION_OPTIONS.values())
_REPOSITORY_OPTIONS = frozenset({"-r", "--repo", "--password-file", "--password-command"}) | _LIMIT_FLAGS
_VALUE_OPTIONS = _REPOSITORY_OPTIONS | {"--config"}
"""Global options that take a value (the word after them is not the command)."""

EXIT_CODES: dict[int, str] = {
    0: "success",
    1: "error (the message says which)",
    2: "bad arguments or configuration",
}
"""Exit codes every command can return; a command module adds its own in ``EXIT_CODES``."""

_REPO_ENV = (
    (ENV_REPOSITORY, "repository path (like --repo)"),
    (ENV_PASSWORD, "the repository password"),
    (ENV_PASSWORD_FILE, "file whose first line is the password (like --password-file)"),
    (ENV_PASSWORD_COMMAND, "command printing the password (like --password-command)"),
)
_CONFIG_ENV = ((ENV_CONFIG, "configuration file (like --config)"),)
GLOBAL_GROUP = "global options"
"""The title of the help section holding the global options."""


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors suggest the nearest option or choice."""

    _printing = False

    def _get_formatter(self) -> argparse.HelpFormatter:
        # argparse also makes a formatter for every add_argument (to check the metavar): the plain
        # one does for that, so the rich one is loaded only when something is printed.
        if self._printing:
            return _formatter(self.prog)
        return argparse.HelpFormatter(self.prog)

    def print_usage(self, file: Any = None) -> None:
        self._printing = True
        super().print_usage(file)

    def print_help(self, file: Any = None) -> None:
        self._printing = True
        super().print_help(file)

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {self._with_hint(message)}\n")

    def _with_hint(self, message: str) -> str:
        unknown = re.match(r"unrecognized arguments: (.*)", message)
        if unknown:
            for word in unknown.group(1).split():
                if word.startswith("-"):
                    flag = word.partition("=")[0]
                    near = closest(flag, list(self._option_string_actions))
                    if near:
                        return f"unknown option {flag}: did you mean {near}? (see {self.prog} --help)"
                    return f"unknown option {flag} (see {self.prog} --help)"
            return f"{message} (see {self.prog} --help)"
        bad_choice = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if bad_choice:
            choices = re.findall(r"'([^']*)'", bad_choice.group(2))
            near = closest(bad_choice.group(1), choices)
            if near:
                return f"{message}: did you mean {near!r}?"
        return message


@functools.cache
def _formatter_class() -> type[argparse.HelpFormatter]:
    # Imported only when help or a usage message is printed: a command that parses fine never
    # pays for it, and it cannot fail later (after dropping privileges, say) for lack of a file.
    from rich_argparse import RawDescriptionRichHelpFormatter

    class Formatter(RawDescriptionRichHelpFormatter):
        # Help texts are plain: "[repository]", "[...]" in globs must print as written.
        help_markup = False
        text_markup = False

    return Formatter


def _formatter(prog: str) -> argparse.HelpFormatter:
    return _formatter_class()(prog, max_help_position=32)


def add_global_options(p: argparse.ArgumentParser, *, repository: bool = True) -> None:
    """The options every command accepts, before or after its name (``repository``: the
    repository and password options, left out for commands that never open one)."""
    g = p.add_argument_group(GLOBAL_GROUP)
    s = argparse.SUPPRESS
    if repository:
        g.add_argument(
            "-r",
            "--repo",
            default=s,
            metavar="PATH",
            help=f"repository (default: ${ENV_REPOSITORY}, the config file's [repository], "
            "or the default repository in the user data directory)",
        )
        g.add_argument(
            "--password-file", default=s, metavar="FILE", help="file whose first line is the password"
        )
        g.add_argument(
            "--password-command",
            default=s,
            metavar="CMD",
            help="command whose first output line is the password (run without a shell)",
        )
        for key in CONNECTION_OPTIONS:
            _connection_option(g, CONNECTION_OPTIONS[key])
    g.add_argument("--config", default=s, metavar="FILE", help=f"configuration file (default: ${ENV_CONFIG})")
    g.add_argument("--json", action="store_true", default=s, help="machine-readable JSON lines on stdout")
    g.add_argument("-q", "--quiet", action="store_true", default=s, help="print nothing but errors")
    g.add_argument("-v", "--verbose", action="count", default=s, help="more output (backup: list every file)")


def _connection_option(g: Any, spec: OptionSpec) -> None:
    # Name, range, default and help from config.schema.CONNECTION_OPTIONS; a bad value is refused
    # by argparse with the schema's own wording ("is out of range: allowed ≥ 0").
    def parse(text: str) -> int:
        stripped = text.strip()
        value: Any = int(stripped) if stripped.lstrip("-").isdigit() else text
        value, problem = check_value(spec, value)
        if problem:
            raise argparse.ArgumentTypeError(f"{text} {problem}")
        return int(value)

    parse.__name__ = "KiB/s"  # argparse names the type in "invalid KiB/s value"
    default = toml_repr(default_value(spec.key))
    g.add_argument(
        spec.cli_flag,
        dest=spec.key,
        type=parse,
        default=argparse.SUPPRESS,
        metavar="KiB/s",
        help=f"{spec.help}, {spec.allowed()} (default: {default})",
    )


def environment(*, repository: bool) -> tuple[tuple[str, str], ...]:
    """(variable, what it gives) for a command that opens a repository, or one that does not."""
    return (_REPO_ENV if repository else ()) + _CONFIG_ENV


def epilog(module: ModuleType | None) -> str:
    """The environment variables a command reads and its exit codes (the end of its --help)."""
    env = environment(repository=getattr(module, "REPOSITORY", True))
    codes = dict(EXIT_CODES)
    codes.update(getattr(module, "EXIT_CODES", {}))
    lines = ["environment variables:"]
    lines += [f"  {name:<30} {what}" for name, what in env]
    lines.append("")
    lines.append("exit codes:")
    lines += [f"  {code:<30} {what}" for code, what in sorted(codes.items())]
    return "\n".join(lines)


def schema_option(p: argparse.ArgumentParser | Any, key: str, *short: str) -> None:
    """A flag overriding backup-set option ``key``: name, choices and help come from the schema.

    The value is left as given (``None`` when absent); ranges are checked by
    ``BackupSet.with_overrides`` with the same wording as the configuration file.
    """
    spec = OPTIONS[key]
    default = toml_repr(default_value(key))
    kw: dict[str, Any] = {"dest": key, "default": None}
    if spec.kind is Kind.BOOL:
        kw["action"] = "store_true"
        kw["help"] = f"{spec.help} (default: {default})"
    elif spec.kind is Kind.CHOICE:
        kw["choices"] = spec.choices
        kw["help"] = f"{spec.help} (default: {default})"
    elif spec.kind is Kind.INT:
        kw["type"] = int
        kw["metavar"] = "N"
        kw["help"] = f"{spec.help}, {spec.allowed()} (default: {default})"
    elif spec.kind is Kind.STR_LIST:
        kw["action"] = "append"
        kw["metavar"] = "VALUE"
        kw["help"] = f"{spec.help}; repeatable (default: {default})"
    else:
        kw["help"] = f"{spec.help} (default: {default})"
    p.add_argument(*short, spec.cli_flag, **kw)


class CommandLine:
    """The root parser (for --help, errors and completion) and one parser per command.

    Both are built when first needed: running a command builds only that command's parser (all of
    them took tens of milliseconds of every start), and the root with every sub-parser is built
    only for the top-level help, a mistyped command, or a completion script.
    """

    def __init__(self, commands: Mapping[str, ModuleType]) -> None:
        self.commands = commands
        self._parsers: dict[str, Parser] = {}
        self._root: Parser | None = None
        self._globals = Parser(prog="shadowvault", add_help=False)
        add_global_options(self._globals)

    @property
    def root(self) -> Parser:
        """The top-level parser with every command as a sub-parser."""
        if self._root is None:
            root = Parser(
                prog="shadowvault",
                description="Back up files while they are open, into restic-compatible repositories.",
                epilog=epilog(None),
            )
            root.add_argument("--version", action="version", version=f"shadowvault {__version__}")
            add_global_options(root)
            # prog given: argparse would otherwise format the usage (and load the help formatter) now.
            sub = root.add_subparsers(
                dest="command", metavar="COMMAND", parser_class=Parser, prog="shadowvault"
            )
            for name, module in self.commands.items():
                p = sub.add_parser(name, help=module.HELP, description=module.HELP, epilog=epilog(module))
                self._fill(p, module)
                self._parsers[name] = p
            self._root = root
        return self._root

    @property
    def parsers(self) -> dict[str, Parser]:
        """Every command's parser (builds the root)."""
        _ = self.root
        return self._parsers

    def command_parser(self, name: str) -> Parser:
        """The parser of one command, built alone unless the root already has it."""
        parser = self._parsers.get(name)
        if parser is None:
            module = self.commands[name]
            parser = Parser(prog=f"shadowvault {name}", description=module.HELP, epilog=epilog(module))
            self._fill(parser, module)
            self._parsers[name] = parser
        return parser

    @staticmethod
    def _fill(p: Parser, module: ModuleType) -> None:
        module.add_arguments(p)
        add_global_options(p, repository=getattr(module, "REPOSITORY", True))
        p.set_defaults(_run=module.run)

    def parse(self, argv: Sequence[str]) -> argparse.Namespace:
        """Parse a whole command line; exits 2 with a usage message on bad input."""
        argv = list(argv)
        at = command_index(argv)
        if at is None:
            ns = self.root.parse_args(argv)  # --help, --version, errors, or no command at all
            _fill_defaults(ns)
            return ns
        name = argv[at]
        if name not in self.commands:
            near = closest(name, list(self.commands))
            hint = f": did you mean {near!r}?" if near else ""
            self.root.error(f"unknown command {name!r}{hint} (see shadowvault --help)")
        parser = self.command_parser(name)
        if any(w in ("-h", "--help", "--version") for w in argv[:at]):
            self.root.parse_args(argv[:at])  # prints the top-level help or version and exits
        if not getattr(self.commands[name], "REPOSITORY", True):
            # Said plainly: argparse would take the option's value for a positional and complain about that.
            for word in argv[at + 1 :]:
                flag = word.partition("=")[0]
                if flag in _REPOSITORY_OPTIONS:
                    parser.error(f"{name} does not open a repository: {flag} does not apply to it")
        ns = self._globals.parse_args(argv[:at])
        ns.command = name
        ns = parser.parse_intermixed_args(argv[at + 1 :], namespace=ns)
        _fill_defaults(ns)
        return ns


def command_index(argv: Sequence[str]) -> int | None:
    """Where the command's name is: the first word that is neither an option nor an option's value."""
    skip = False
    for i, word in enumerate(argv):
        if skip:
            skip = False
        elif word == "--":
            return i + 1 if i + 1 < len(argv) else None
        elif word.startswith("-") and word != "-":
            skip = word in _VALUE_OPTIONS
        else:
            return i
    return None


def _fill_defaults(ns: argparse.Namespace) -> None:
    for key, value in GLOBAL_DEFAULTS.items():
        if not hasattr(ns, key):
            setattr(ns, key, value)
