"""One module per command; each has HELP, add_arguments(parser) and run(app, args) -> exit code."""

from __future__ import annotations

from types import ModuleType

from . import (
    activity,
    backup,
    cat,
    check,
    completion,
    diff,
    dump,
    find,
    init,
    key,
    ls,
    mount,
    report,
    restore,
    sets,
    snapshots,
    stats,
    tag,
    unlock,
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
    "diff": diff,
    "find": find,
    "stats": stats,
    "dump": dump,
    "tag": tag,
    "unlock": unlock,
    "key": key,
    "mount": mount,
    "completion": completion,
}
