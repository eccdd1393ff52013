"""Snapshot files (``snapshots/<id>``): time, root tree, paths, host, user, tags, parent.

Field order and omission follow restic's ``Snapshot`` struct. Unknown keys (for
example restic's newer ``summary``) are kept in ``extra`` and written back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shadowvault.repo.files import jsonfmt
from shadowvault.repo.ids import parse_id

_KNOWN_KEYS = frozenset(
    {
        *("time", "parent", "tree", "paths", "hostname", "username", "uid", "gid"),
        *("excludes", "tags", "original", "program_version"),
    }
)


@dataclass
class Snapshot:
    """One snapshot. ``time`` is ns since the epoch, ``tree`` the root tree id (bytes);
    ``parent`` and ``original`` are hex snapshot ids or None."""

    time: int
    tree: bytes
    paths: list[str] = field(default_factory=list)
    hostname: str = ""
    username: str = ""
    uid: int = 0
    gid: int = 0
    excludes: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    parent: str | None = None
    original: str | None = None
    program_version: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    # Presentation of ``time`` (not part of equality): restic counts retention periods on this
    # wall clock. None: the local offset when written.
    time_offset: int | None = field(default=None, compare=False)
    """UTC offset (seconds) ``time`` was written with (``Z`` reads as 0)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON object in restic's key order with empty optional fields left out."""
        d: dict[str, Any] = {"time": jsonfmt.format_time(self.time, offset=self.time_offset)}
        if self.parent:
            d["parent"] = self.parent
        d["tree"] = self.tree.hex()
        d["paths"] = list(self.paths)
        for key in ("hostname", "username", "uid", "gid", "excludes", "tags", "original", "program_version"):
            value = getattr(self, key)
            if value:
                d[key] = list(value) if isinstance(value, list) else value
        for key, value in self.extra.items():
            if key not in d:
                d[key] = value
        return d

    def to_json(self) -> bytes:
        """Compact JSON bytes."""
        return jsonfmt.dumps(self.to_dict())

    @classmethod
    def from_json(cls, raw: bytes) -> Snapshot:
        """Parse a snapshot; ``ValueError`` when malformed."""
        d = jsonfmt.loads(raw)
        if not isinstance(d, dict):
            raise ValueError("snapshot is not a JSON object")
        try:
            return cls(
                time=jsonfmt.parse_time(d["time"]),
                time_offset=jsonfmt.time_offset(str(d["time"])),
                tree=parse_id(d["tree"]),
                paths=list(d.get("paths") or []),
                hostname=d.get("hostname") or "",
                username=d.get("username") or "",
                uid=int(d.get("uid") or 0),
                gid=int(d.get("gid") or 0),
                excludes=list(d.get("excludes") or []),
                tags=list(d.get("tags") or []),
                parent=d.get("parent") or None,
                original=d.get("original") or None,
                program_version=d.get("program_version") or "",
                extra={k: v for k, v in d.items() if k not in _KNOWN_KEYS},
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"snapshot lacks a valid field: {exc}") from exc
