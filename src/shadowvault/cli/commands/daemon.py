"""`shadowvault daemon [--config F]`: run the configured sets on their schedules until stopped."""

from __future__ import annotations

import argparse
import os
import socket
import sys
from datetime import datetime
from pathlib import Path

from shadowvault.config import BackupSet, Config, load_config
from shadowvault.engine.activity import ActivityLog
from shadowvault.engine.daemon import Daemon, DaemonLock, daemon_lock_path
from shadowvault.engine.retention import apply_retention
from shadowvault.engine.scheduled import RunEnvironment
from shadowvault.errors import UsageError
from shadowvault.repo import Repository

from ..app import App, state_dir
from .activity import activity_log

HELP = "run the configured sets on their schedules (SIGHUP reloads, SIGTERM stops)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Only the common options (--config, --repo, --password-file)."""


def stderr_log(message: str) -> None:
    """One plain line on stderr; journald adds its own time stamp, a terminal gets ours."""
    if os.environ.get("JOURNAL_STREAM"):
        line = message
    else:
        line = f"{datetime.now().astimezone().isoformat(' ', 'seconds')} {message}"
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def config_file(app: App) -> Config:
    """The configuration the scheduler runs; scheduling without a file makes no sense."""
    config = app.config()
    if config is None or config.path is None:
        raise UsageError("the scheduler needs a configuration file: pass --config or set $SHADOWVAULT_CONFIG")
    return config


def forget_by_retention(repo: Repository, bset: BackupSet) -> None:
    """The daemon's retention step (``forget_after_backup``): the set's rules, as `forget --set`."""
    apply_retention(repo, bset)


def environment(app: App, activity: ActivityLog) -> RunEnvironment:
    """How scheduled runs reach the repository and the log (shared with `schedule run`)."""

    def open_repo() -> Repository:
        return app.open_repo(create_default=True)

    return RunEnvironment(
        open_repo=open_repo,
        activity=activity,
        host=socket.gethostname(),
        log=stderr_log,
        excluded_paths=[p for p in (app.local_repo_dir(), str(state_dir())) if p],
        apply_retention=forget_by_retention,
    )


def run(app: App, args: argparse.Namespace) -> int:
    """Take the daemon lock, then loop until SIGTERM/SIGINT."""
    config = config_file(app)
    path: Path = config.path  # type: ignore[assignment]

    def load_sets() -> list[BackupSet]:
        fresh = load_config(path)
        return [fresh.effective(name).values for name in fresh.set_names()]

    sets = load_sets()  # a bad file stops the start here, with exit code 2
    if not any(s.schedule for s in sets):
        raise UsageError(f'{path} has no set with a schedule: add schedule = "daily 02:00" to a set')
    with (
        DaemonLock(daemon_lock_path(state_dir(), path), path),
        ActivityLog(activity_log(app)) as log,
    ):
        stderr_log(f"shadowvault daemon started (pid {os.getpid()}, config {path})")
        daemon = Daemon(load_sets, environment(app, log))
        daemon.run()
        stderr_log("shadowvault daemon stopped")
    return 0
