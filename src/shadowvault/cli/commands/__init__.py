"""One module per command; each has HELP, add_arguments(parser) and run(app, args) -> exit code.

``COMMANDS`` is the one table of command names, in the order ``--help`` lists them. It maps a name
to its module and imports that module only when it is looked up: running ``backup`` loads the
backup command's imports, not those of ``mount``, ``web``, ``schedule`` or ``status`` (together
about half of a no-change backup's start-up, issue 10). Iterating ``COMMANDS.values()`` or
``.items()`` (the top-level help, completion scripts, the manual page) imports every module.

A program that drops privileges after importing the CLI imports the modules of the commands it
will run first (``import shadowvault.cli.commands.backup``), or all of them with
:func:`load_all`: the interpreter's own files may be unreadable once it runs as another user.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from types import ModuleType

NAMES: tuple[str, ...] = (
    "init",
    "backup",
    "restore",
    "snapshots",
    "ls",
    "report",
    "check",
    "cat",
    "activity",
    "sets",
    "daemon",
    "schedule",
    "status",
    "web",
    "forget",
    "prune",
    "diff",
    "find",
    "stats",
    "dump",
    "tag",
    "unlock",
    "key",
    "mount",
    "completion",
    "help",
)
"""Every command, in the order of the top-level help."""


class CommandTable(Mapping[str, ModuleType]):
    """Command name → its module, imported on first lookup."""

    def __init__(self, names: tuple[str, ...]) -> None:
        self._names = names
        self._known = frozenset(names)

    def __getitem__(self, name: str) -> ModuleType:
        if name not in self._known:
            raise KeyError(name)
        return importlib.import_module(f"{__name__}.{name}")

    def __contains__(self, name: object) -> bool:
        return name in self._known

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


COMMANDS: Mapping[str, ModuleType] = CommandTable(NAMES)


def load_all() -> None:
    """Import every command's module now (before dropping privileges, say)."""
    for name in NAMES:
        _ = COMMANDS[name]
