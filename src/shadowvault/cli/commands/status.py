"""`shadowvault status [--json] [--prometheus FILE]`: sets, last runs, problem files, repository health."""

from __future__ import annotations

import argparse
from pathlib import Path

from shadowvault.engine.activity import log_path
from shadowvault.engine.metrics import write_textfile
from shadowvault.engine.status import AD_HOC, RepositoryStatus, SetStatus, read_status
from shadowvault.engine.status_json import status_json
from shadowvault.errors import UsageError

from ..app import App, state_dir
from ..render import human_bytes

HELP = "show each set's last run, its suspect and failed files, and the repository's health"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """--prometheus FILE, --no-unreferenced."""
    p.add_argument(
        "--prometheus",
        metavar="FILE",
        help="also write the status as a node-exporter textfile (FILE should end in .prom)",
    )
    p.add_argument(
        "--no-unreferenced",
        action="store_true",
        help="skip counting data no snapshot references (it reads every tree)",
    )


def _time(s: SetStatus) -> str:
    r = s.last_run
    if r is None:
        return "never ran"
    took = f" in {r.duration:.1f} s" if r.duration is not None else ""
    counts = f"{r.counts.ok} ok, {r.counts.suspect} suspect, {r.counts.failed} failed"
    when = r.started.astimezone().strftime("%Y-%m-%d %H:%M:%S")
    return f"{when}{took}: {r.status} (exit {r.exit_code if r.exit_code is not None else '-'}), {counts}"


def _print_set(app: App, s: SetStatus) -> None:
    mark = "!" if s.flagged else " "
    name = f"set {s.name}" if s.name != AD_HOC else "runs without a set"
    app.print(f"{mark} {name}: {_time(s)}")
    if s.next_run is not None:
        window = f" (window {s.next_run.window})" if s.next_run.window else ""
        app.print(f"    next run {s.next_run.at.astimezone().strftime('%Y-%m-%d %H:%M')}{window}")
    for f in s.flags:
        app.print(f"    {f.kind}: {f.message}")
    for p in s.problems:
        app.print(f"    {p.classification:<8} {p.path}  ({p.message or p.reason or ''})")


def _print_repo(app: App, r: RepositoryStatus) -> None:
    unref = "not counted" if r.unreferenced_bytes is None else human_bytes(r.unreferenced_bytes)
    app.print(
        f"  repository {r.location}: {r.snapshots} snapshots, {human_bytes(r.size_bytes)}, "
        f"unreferenced {unref}"
    )
    c = r.last_check
    if c is None:
        app.print("    never checked: run `shadowvault check`")
    else:
        what = "no errors" if c.ok else f"{c.problems} problems"
        data = " (with --read-data)" if c.read_data else ""
        app.print(f"    last check {c.when.astimezone().strftime('%Y-%m-%d %H:%M')}{data}: {what}")


def run(app: App, args: argparse.Namespace) -> int:
    """Print the status (or one JSON document); exit 0 even when sets are flagged."""
    target = Path(args.prometheus) if args.prometheus else None
    if target is not None and not target.parent.is_dir():
        raise UsageError(f"--prometheus {target}: directory {target.parent} does not exist; create it first")
    repo = app.open_repo()
    try:
        status = read_status(
            app.config(),
            log_path(state_dir(), str(repo.config["id"])),
            repo,
            state_dir() / "checks",
            unreferenced=not args.no_unreferenced,
        )
    finally:
        repo.close()
    if target is not None:
        write_textfile(status, target)
    if app.json:
        app.emit(status_json(status))
        return 0
    for s in status.sets:
        _print_set(app, s)
    if not status.sets:
        app.print("  no backup sets configured and no runs recorded")
    for r in status.repositories:
        _print_repo(app, r)
    return 0
