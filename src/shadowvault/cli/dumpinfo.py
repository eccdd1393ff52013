"""What `sets show` says about a set's database servers: where their dumps go and the last ones."""

from __future__ import annotations

from typing import Any

from shadowvault.config import EffectiveSet
from shadowvault.engine.activity import ActivityLog
from shadowvault.engine.hotbackup.dumps import virtual_dir

from .app import state_dir
from .render import dump_line


def _last_dumps(set_name: str) -> list[dict[str, Any]]:
    """The dumps of the set's newest session in this machine's activity log."""
    path = state_dir() / "activity.db"
    if not set_name or not path.exists():
        return []
    with ActivityLog(path) as log:
        for record in log.sessions(set_name, limit=5):
            dumps = log.dumps(record.id)
            if dumps:
                return [{"path": d.path, "session": record.id, **d.detail} for d in dumps]
    return []


def database_info(eff: EffectiveSet) -> dict[str, Any] | None:
    """Servers, their virtual directories and the last recorded dumps (None: no databases)."""
    servers = eff.values.database_servers()
    if not servers:
        return None
    return {
        "servers": [
            {
                "type": s.type,
                "directory": virtual_dir(s),
                "databases": list(s.databases) or "all",
                "credentials": "password_file"
                if s.password_file
                else "the tools' own (.pgpass, PGPASSFILE, ~/.my.cnf)",
            }
            for s in servers
        ],
        "last_dumps": _last_dumps(eff.values.name),
    }


def database_lines(eff: EffectiveSet) -> list[str]:
    """The same as text lines."""
    info = database_info(eff)
    if info is None:
        return []
    lines = ["database dumps (stored in the snapshot):"]
    for s in info["servers"]:
        names = ", ".join(s["databases"]) if isinstance(s["databases"], list) else "all"
        lines.append(
            f"  {s['type']:<10} {s['directory']}/  databases: {names}  credentials: {s['credentials']}"
        )
    if info["last_dumps"]:
        lines.append(f"last dumps (activity session {info['last_dumps'][0]['session']}):")
        lines += [
            f"  {d.get('class', '?'):<8} {dump_line(d['path'], d.get('dump') or {})}"
            for d in info["last_dumps"]
        ]
    return lines
