"""One module per command; each has HELP, add_arguments(parser) and run(app, args) -> exit code."""

from __future__ import annotations

from types import ModuleType

from . import backup, cat, check, init, ls, restore, snapshots

COMMANDS: dict[str, ModuleType] = {
    "init": init,
    "backup": backup,
    "restore": restore,
    "snapshots": snapshots,
    "ls": ls,
    "check": check,
    "cat": cat,
}
