"""One module per command; each has HELP, add_arguments(parser) and run(app, args) -> exit code."""

from __future__ import annotations

from types import ModuleType

from . import (
    activity,
    backup,
    cat,
    check,
    daemon,
    forget,
    init,
    ls,
    prune,
    report,
    restore,
    schedule,
    sets,
    snapshots,
    status,
    web,
)

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
    "daemon": daemon,
    "schedule": schedule,
    "status": status,
    "web": web,
    "forget": forget,
    "prune": prune,
}
