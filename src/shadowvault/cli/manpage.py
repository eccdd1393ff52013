"""The manual page, written from the argument parsers (so it never drifts from ``--help``).

``shadowvault help --man`` prints it; ``man -l`` shows it, or install it as
``/usr/local/share/man/man1/shadowvault.1``. Sections: NAME, SYNOPSIS, DESCRIPTION, GLOBAL
OPTIONS, COMMANDS (one subsection per command: usage, arguments, options, its own exit codes),
ENVIRONMENT, EXIT STATUS, SEE ALSO.

Written here rather than with ``argparse-manpage``: that library repeats the global options under
every one of the commands (about 2,000 lines), prints each command's epilog (environment and exit
codes) as one refilled paragraph, and passes non-ASCII text (≥, –, …) through, which groff warns
about unless run through preconv. This generator walks the same parsers in about a hundred lines.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from types import ModuleType

from shadowvault import __version__
from shadowvault.repo.backends.options import ENVIRONMENT as BACKEND_ENVIRONMENT

from .parser import EXIT_CODES, GLOBAL_GROUP, environment

INTERRUPT_CODES = {130: "interrupted by SIGINT (Ctrl-C)", 143: "interrupted by SIGTERM"}
"""Exit codes of ``interrupts`` (128 + the signal), any command."""


def roff(text: str) -> str:
    """``text`` as roff input: backslashes and hyphens escaped, non-ASCII as ``\\[uXXXX]``, and a
    line never starting with a control character."""
    out = []
    for ch in text.replace("\\", "\\e").replace("-", "\\-"):
        out.append(ch if ord(ch) < 128 else f"\\[u{ord(ch):04X}]")
    lines = "".join(out).split("\n")
    return "\n".join("\\&" + line if line.startswith((".", "'")) else line for line in lines)


def _plain(parser: argparse.ArgumentParser) -> argparse.HelpFormatter:
    # The plain argparse formatter: no colours or markup in the page.
    return argparse.HelpFormatter(parser.prog, width=78)


def _actions(parser: argparse.ArgumentParser, *, globals_only: bool) -> Iterable[argparse.Action]:
    for group in parser._action_groups:
        if (group.title == GLOBAL_GROUP) != globals_only:
            continue
        for action in group._group_actions:
            if action.help != argparse.SUPPRESS and not isinstance(action, argparse._HelpAction):
                yield action


def _items(parser: argparse.ArgumentParser, actions: Iterable[argparse.Action]) -> list[str]:
    fmt = _plain(parser)
    lines = []
    for action in actions:
        invocation = fmt._format_action_invocation(action)
        lines += [".TP", f"\\fB{roff(invocation)}\\fR", roff(fmt._expand_help(action) if action.help else "")]
    return lines


def _command(name: str, module: ModuleType, parser: argparse.ArgumentParser) -> list[str]:
    usage = _plain(parser)
    # The command's own arguments only: the global options are described once, above.
    own = list(_actions(parser, globals_only=False))
    usage.add_usage(parser.usage, own, parser._mutually_exclusive_groups, prefix="")
    lines = [f".SS {roff(name)}", roff(module.HELP), ".PP", ".nf", roff(usage.format_help().rstrip()), ".fi"]
    lines += _items(parser, _actions(parser, globals_only=False))
    codes = getattr(module, "EXIT_CODES", {})
    if codes:
        lines += [".PP", "Exit codes of this command besides the common ones:"]
        lines += [line for code, what in sorted(codes.items()) for line in (".TP", str(code), roff(what))]
    return lines


def manpage(
    root: argparse.ArgumentParser,
    parsers: dict[str, argparse.ArgumentParser],
    commands: Mapping[str, ModuleType],
) -> str:
    """The whole page (roff, ASCII only)."""
    date = datetime.now(UTC).strftime("%Y-%m-%d")
    lines = [
        f'.TH SHADOWVAULT 1 "{date}" "shadowvault {roff(__version__)}" "User Commands"',
        ".SH NAME",
        "shadowvault \\- " + roff(root.description or ""),
        ".SH SYNOPSIS",
        ".B shadowvault",
        "[\\fIGLOBAL OPTIONS\\fR] \\fICOMMAND\\fR [\\fIOPTIONS\\fR] [\\fIARGUMENTS\\fR]",
        ".SH DESCRIPTION",
        roff(
            "shadowvault writes restic repositories (format version 2): restic can check and restore "
            "everything it writes. Every file of a backup ends as ok, suspect (it changed or had a "
            "writer while read) or failed; that outcome is stored in the snapshot."
        ),
        ".PP",
        roff(
            "Global options may be given before or after the command; options may follow "
            "positional arguments. `shadowvault COMMAND --help` shows one command's help."
        ),
        ".SH GLOBAL OPTIONS",
        *_items(root, _actions(root, globals_only=True)),
        ".TP",
        "\\fB\\-\\-version\\fR",
        "print the version and exit",
        ".SH COMMANDS",
    ]
    for name, module in commands.items():
        lines += _command(name, module, parsers[name])
    lines.append(".SH ENVIRONMENT")
    for var, what in (*environment(repository=True), *BACKEND_ENVIRONMENT):
        lines += [".TP", f"\\fB{roff(var)}\\fR", roff(what)]
    lines.append(".SH EXIT STATUS")
    codes: dict[int, list[str]] = {code: [what] for code, what in EXIT_CODES.items()}
    for name, module in commands.items():
        for code, what in getattr(module, "EXIT_CODES", {}).items():
            codes.setdefault(code, []).append(f"{name}: {what}")
    for code, what in INTERRUPT_CODES.items():
        codes.setdefault(code, []).append(what)
    for code in sorted(codes):
        lines += [".TP", str(code), roff("; ".join(codes[code]))]
    lines += [".SH SEE ALSO", "\\fBrestic\\fR(1), \\fBfusermount3\\fR(1)", ""]
    return "\n".join(lines)
