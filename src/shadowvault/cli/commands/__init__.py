"""One module per command; each has HELP, add_arguments(parser) and run(app, args) -> exit code."""

from __future__ import annotations

from types import ModuleType

from . import activity, backup, cat, check, init, ls, report, restore, sets, snapshots, status, web

COMMANDS: dict[str, ModuleType] = {
    "init": init,
    "backup": backup,
    "restore": restore,
    "snapshots": snapshots,
    "ls": ls,
    "report": report,
    "check": check,
    "cat": cat,
    "activity": activity,
    "sets": sets,
    "status": status,
    "web": web,
}
