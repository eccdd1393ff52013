"""`shadowvault schedule [--next N] | install | uninstall | run --set NAME`: scheduled sets."""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import socket
import sys
from datetime import UTC, datetime
from pathlib import Path

from shadowvault.config import BackupSet
from shadowvault.engine.activity import ActivityLog
from shadowvault.engine.schedule_report import schedule_overview, span
from shadowvault.engine.scheduled import run_when_triggered
from shadowvault.engine.systemd import (
    SERVICE_NAME,
    install_units,
    installed_timers,
    service_unit,
    systemctl,
    timer_name,
    timer_unit,
    unit_dir,
)
from shadowvault.errors import FatalError, UsageError

from ..app import App
from .activity import activity_log
from .daemon import config_file, environment, stderr_log

HELP = "next runs of scheduled sets; install systemd timers; run a set as a timer does"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """`list` (default), `install`, `uninstall` or `run`."""
    p.add_argument("action", nargs="?", default="list", choices=["list", "install", "uninstall", "run"])
    p.add_argument("--next", type=int, default=3, metavar="N", help="how many next runs to show (default 3)")
    p.add_argument("--set", dest="set_name", metavar="NAME", help="only this set (install, uninstall, run)")
    p.add_argument(
        "--user", action="store_true", help="user timers (~/.config/systemd/user), not system ones"
    )
    p.add_argument("--unit-dir", help="write units here instead of the systemd directory")
    p.add_argument("--no-enable", action="store_true", help="write the units, do not enable the timers")


def _sets(app: App, name: str | None) -> list[BackupSet]:
    config = config_file(app)
    names = [name] if name else config.set_names()
    sets = [config.effective(n).values for n in names]
    scheduled = [s for s in sets if s.schedule]
    if name and not scheduled:
        raise UsageError(f'set {name!r} has no schedule: add schedule = "daily 02:00" to it')
    if not scheduled:
        raise UsageError(f"{config.path} has no set with a schedule")
    return scheduled


def run(app: App, args: argparse.Namespace) -> int:
    """Dispatch on the action."""
    if args.action == "run":
        if not args.set_name:
            raise UsageError("schedule run needs --set NAME (systemd passes it)")
        (bset,) = _sets(app, args.set_name)
        with ActivityLog(activity_log(app)) as log:
            out = run_when_triggered(bset, environment(app, log), datetime.now(UTC))
        stderr_log(f"set {bset.name}: {out.status}, exit code {out.exit_code}")
        return out.exit_code
    if args.action in ("install", "uninstall"):
        return _systemd(app, args)
    return _list(app, args)


def _list(app: App, args: argparse.Namespace) -> int:
    if not 1 <= args.next <= 100:
        raise UsageError("--next must be between 1 and 100")
    db = activity_log(app)
    sets = _sets(app, args.set_name)
    with ActivityLog(db) if db.exists() else contextlib.nullcontext() as log:
        rows = schedule_overview(sets, log, datetime.now(UTC), socket.gethostname(), args.next)
    for row in rows:
        nexts = [r.start.isoformat(" ", "minutes") for r in row.next_runs]
        if app.json:
            app.emit(
                {
                    "set": row.name,
                    "schedule": row.schedule,
                    "timezone": row.zone,
                    "window": row.window,
                    "stop_at": row.stop_at,
                    "next_runs": nexts,
                    "recent_seconds": [d.total_seconds() for d in row.recent],
                    "budget_seconds": row.budget.total_seconds() if row.budget else None,
                    "likely_overrun": row.overrun,
                }
            )
            continue
        limits = ", ".join(f"{k} {v}" for k, v in (("window", row.window), ("stop_at", row.stop_at)) if v)
        app.print(f"{row.name}: {row.schedule} ({row.zone}){', ' + limits if limits else ''}")
        app.print(f"  next: {', '.join(nexts) or 'never'}")
        if row.recent:
            took = ", ".join(span(d) for d in row.recent)
            budget = f" of {span(row.budget)}" if row.budget else ""
            app.print(f"  last runs took: {took}{budget}")
        if row.overrun:
            app.print(f"  likely to overrun: {row.overrun}")
    return 0


def _systemd(app: App, args: argparse.Namespace) -> int:
    user = args.user or os.geteuid() != 0
    home_units = unit_dir(user, Path.home(), os.environ.get("XDG_CONFIG_HOME"))
    directory = Path(args.unit_dir) if args.unit_dir else home_units
    managed = not args.unit_dir  # a directory of one's own is only written, systemd is not told
    if args.action == "uninstall":
        timers = [timer_name(args.set_name)] if args.set_name else installed_timers(directory)
        for timer in timers:
            if managed:
                systemctl(user, "disable", "--now", timer)  # never enabled: nothing to undo
            (directory / timer).unlink(missing_ok=True)
            app.info(f"removed {directory / timer}")
        if not installed_timers(directory):
            (directory / SERVICE_NAME).unlink(missing_ok=True)
        if managed:
            systemctl(user, "daemon-reload")
        return 0
    config = config_file(app)
    if config.repository.password_file is None:
        raise UsageError("timers run without a terminal: set password_file in [repository] of the config")
    sets = _sets(app, args.set_name)
    extra = {"PYTHONPATH": os.environ["PYTHONPATH"]} if os.environ.get("PYTHONPATH") else {}
    units = [service_unit(_command(), Path(str(config.path)).resolve(), extra)] + [
        timer_unit(s) for s in sets
    ]
    for path in install_units(directory, units):
        app.info(f"wrote {path}")
    if args.no_enable or not managed:
        return 0
    for step in (["daemon-reload"], ["enable", "--now", *(timer_name(s.name) for s in sets)]):
        ok, said = systemctl(user, *step)
        if not ok:
            scope = "--user " if user else ""
            raise FatalError(
                f"units written to {directory}, but `systemctl {scope}{' '.join(step)}` failed ({said}): "
                f"run it where systemd manages this {'user' if user else 'machine'}"
            )
    app.info(f"enabled {', '.join(timer_name(s.name) for s in sets)}")
    return 0


def _command() -> list[str]:
    found = shutil.which("shadowvault")
    return [found] if found else [sys.executable, "-m", "shadowvault"]
