"""`shadowvault sets [show NAME]`: the configured backup sets and their effective settings."""

from __future__ import annotations

import argparse
import socket
from datetime import UTC, datetime
from typing import Any

from shadowvault.config import Config, EffectiveSet
from shadowvault.engine.sets import builtin_exclusions
from shadowvault.engine.timing import timing_of
from shadowvault.errors import UsageError

from ..app import App
from ..dumpinfo import database_info, database_lines

REPOSITORY = False
"""Never opens a repository: --repo and the password options are not offered."""
HELP = "list backup sets, or show one set's effective settings"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Optional `show NAME`."""
    p.add_argument(
        "action", nargs="?", choices=["list", "show"], default="list", help="list (default) or show"
    )
    p.add_argument("name", nargs="?", help="the set to show")


def _config(app: App) -> Config:
    config = app.config()
    if config is None or config.path is None:
        raise UsageError("no configuration file: pass --config, set $SHADOWVAULT_CONFIG, or create one")
    return config


def _next_run(eff: EffectiveSet) -> str | None:
    """The next run in the set's time zone, window and jitter included (as the daemon runs it)."""
    run = timing_of(eff.values).next_run(datetime.now(UTC), socket.gethostname())
    return run.start.isoformat(timespec="minutes") if run is not None else None


def run(app: App, args: argparse.Namespace) -> int:
    """List the sets (name, sources, schedule) or show one with the origin of every value."""
    config = _config(app)
    if args.action == "show":
        if not args.name:
            raise UsageError("sets show needs the NAME of a set")
        return _show(app, config, config.effective(args.name))
    if args.name:
        raise UsageError(f"unexpected argument {args.name!r}: did you mean `sets show {args.name}`?")
    sets = [config.effective(n) for n in config.set_names()]
    if app.json:
        app.emit(
            [
                {
                    "name": e.values.name,
                    "type": e.values.type,
                    "sources": e.values.sources,
                    "schedule": e.values.schedule,
                    "next_run": _next_run(e),
                    "open_files": e.values.open_files,
                }
                for e in sets
            ]
        )
        return 0
    if not sets:
        app.print(f"{config.path} defines no backup sets")
        return 0
    app.print(f"{'Set':<16} {'Schedule':<20} Sources")
    for e in sets:
        schedule = e.values.schedule or "(by hand)"
        app.print(f"{e.values.name:<16} {schedule:<20} {', '.join(e.values.sources) or '(none)'}")
    app.print(f"{len(sets)} sets in {config.path}")
    return 0


def _value(eff: EffectiveSet, key: str) -> Any:
    if key.startswith("retention."):
        return getattr(eff.values.retention, key.split(".", 1)[1])
    value = getattr(eff.values, key)
    return value.as_dict() if key == "retention" else value


def _show(app: App, config: Config, eff: EffectiveSet) -> int:
    builtin = builtin_exclusions()
    if app.json:
        app.emit(
            {
                "name": eff.values.name,
                "config": str(config.path),
                "options": {k: {"value": _value(eff, k), "origin": o} for k, o in eff.origin.items()},
                "next_run": _next_run(eff),
                "builtin_excludes": builtin if eff.values.use_default_excludes else None,
                "databases": database_info(eff),
            }
        )
        return 0
    app.print(f"set {eff.values.name} ({config.path})")
    for key, shown, origin, _help in eff.rows():
        app.print(f"  {key:<24} {shown:<40} [{origin}]")
    for line in database_lines(eff):
        app.print(line)
    if not eff.values.use_default_excludes:
        app.print("built-in exclusions: off (use_default_excludes = false)")
        return 0
    app.print("built-in exclusions (use_default_excludes = true):")
    app.print("  " + "  ".join(builtin["patterns"]))
    for line in builtin["content"] + builtin["runtime"]:
        app.print(f"  {line}")
    return 0
