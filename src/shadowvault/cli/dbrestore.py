"""`restore SNAPSHOT --database NAME [--to-database NEW] [--set SET]`: a dump back into its server."""

from __future__ import annotations

import argparse

from shadowvault.engine.select import select_snapshot
from shadowvault.errors import UsageError

from .app import App
from .render import human_bytes
from .selection import snapshot_filter


def add_database_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of a database restore (the restore command's other flags do not apply)."""
    p.add_argument("--database", metavar="NAME", help="pipe the stored dump of this database into its server")
    p.add_argument(
        "--to-database", metavar="NEW", help="load it as this database instead (created if missing)"
    )
    # --set (from the snapshot filters) also names the set whose connection settings are used.


def run_database(app: App, args: argparse.Namespace) -> int:
    """Stream the dump into pg_restore / mariadb; errors are one line (exit 1)."""
    # Imported here: every restore imports this module, few of them restore a database (~0.04 s).
    from shadowvault.engine.hotbackup.restore import restore_database

    server = None
    set_name = args.f_sets[-1] if getattr(args, "f_sets", None) else None
    if set_name:
        config = app.config()
        if config is None:
            raise UsageError("--set needs a configuration file (--config or $SHADOWVAULT_CONFIG)")
        servers = config.effective(set_name).values.database_servers()
        if len(servers) != 1:
            raise UsageError(f"set {set_name!r} names {len(servers)} database servers: use a set with one")
        server = servers[0]
    repo = app.open_repo()
    try:
        with repo.lock(exclusive=False, meanwhile=repo.load_index):
            # `latest` honours --host/--path/--tag/--set like every other snapshot argument.
            selected = select_snapshot(repo, args.snapshot, snapshot_filter(args))
            done = restore_database(
                repo, selected.id, args.database, to_database=args.to_database, server=server
            )
    finally:
        repo.close()
    if app.json:
        app.emit(
            {
                "message_type": "summary",
                "database": args.database,
                "source": done.source,
                "target_database": done.target,
                "bytes": done.bytes,
                "duration": round(done.duration, 3),
            }
        )
    else:
        app.print(f"restored {done.source} into database {done.target} ({human_bytes(done.bytes)})")
    return 0
