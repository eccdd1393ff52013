"""The one schema of a backup set: every option, its type, default, allowed values and help.

``BackupSet`` is a frozen dataclass whose fields carry an :class:`OptionSpec` in their metadata.
That spec is the single source for the configuration file (key names, validation, error texts),
for ``sets show`` (help and origin of each value) and for command-line overrides (flag names,
parsing of flag text): see :data:`OPTIONS`, :func:`check_value` and :func:`parse_cli_value`.

Defaults chosen here (and why):

* ``open_files = "try-deny-write"`` — hold writers off when we can, never refuse a file.
* ``retry_times = 3``, ``retry_interval = 10`` — enough to ride out a short write burst without
  making a session much longer; both are per set (DS-Client bounds 0–10 and 0–999 s).
* ``one_file_system = false`` — as restic; the built-in excludes already skip /proc, /sys, /dev.
* ``exclude_if_present = ["CACHEDIR.TAG"]``, ``use_default_excludes = true``.
* ``snapshot = "off"``, ``stop_on_errors = 0`` (never stop), ``type = "files"``.
* ``read_concurrency = 1`` — files are read one after the other in the walking thread, as before
  the option existed; more readers help on fast disks with many small files (restic reads 2).

String values for ``open_files`` and ``snapshot`` are kept as strings; the engine converts them
to ``openfiles.model.Strategy`` and ``snapshots.model.SnapshotMode``.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import json
from dataclasses import dataclass, field
from typing import Any

from shadowvault.config.databases import (
    DEFAULT_LOCK_WAIT_TIMEOUT,
    DatabaseServer,
    check_databases_value,
    servers_of,
)
from shadowvault.config.schedule import (
    SCHEDULE_GRAMMAR,
    Schedule,
    parse_schedule,
    parse_time_of_day,
    parse_timezone,
    parse_window,
)
from shadowvault.errors import ConfigError

__all__ = [
    "CONNECTION_OPTIONS",
    "OPEN_FILES_VALUES",
    "OPTIONS",
    "OVERLAP_VALUES",
    "RETENTION_KEYS",
    "SET_TYPES",
    "SNAPSHOT_VALUES",
    "BackupSet",
    "Connection",
    "Kind",
    "OptionSpec",
    "Retention",
    "check_value",
    "closest",
    "default_value",
    "overrides_to_values",
    "parse_cli_value",
    "toml_repr",
]

OPEN_FILES_VALUES: tuple[str, ...] = ("try-deny-write", "deny-write", "prevent-write", "allow-write")
SNAPSHOT_VALUES: tuple[str, ...] = ("off", "auto", "required")
OVERLAP_VALUES: tuple[str, ...] = ("queue", "skip")
SET_TYPES: tuple[str, ...] = ("files", "sqlite", "postgresql", "mariadb")


class Kind(enum.Enum):
    """Value types an option can have (TOML type plus any syntax check)."""

    STR = "string"
    OPT_STR = "string or absent"
    INT = "integer"
    BOOL = "boolean"
    STR_LIST = "list of strings"
    CHOICE = "one of a fixed set of strings"
    SCHEDULE = "schedule string"
    RETENTION = "retention table"
    WINDOW = "window HH:MM-HH:MM"
    TIME_OF_DAY = "time of day HH:MM"
    TIMEZONE = "time zone name"
    DATABASES = 'database names or "all" (server sets); tables {type, host, port, …} (files sets)'


@dataclass(frozen=True)
class OptionSpec:
    """Everything known about one option; ``key`` is the TOML key and dataclass field name."""

    kind: Kind
    help: str
    choices: tuple[str, ...] = ()
    minimum: int | None = None
    maximum: int | None = None
    key: str = ""

    @property
    def cli_flag(self) -> str:
        """The command-line flag that overrides this option, e.g. ``--retry-times``."""
        return "--" + self.key.replace("_", "-")

    def allowed(self) -> str:
        """Human description of the allowed values, as used in error messages and help."""
        if self.kind is Kind.CHOICE:
            return ", ".join(self.choices)
        if self.kind is Kind.SCHEDULE:
            return SCHEDULE_GRAMMAR
        if self.kind is Kind.WINDOW:
            return '"HH:MM-HH:MM" (e.g. "22:00-05:00", may cross midnight)'
        if self.kind is Kind.TIME_OF_DAY:
            return '"HH:MM"'
        if self.kind is Kind.TIMEZONE:
            return 'an IANA time zone name such as "Europe/Berlin"'
        if self.kind is Kind.DATABASES:
            return str(self.kind.value)
        if self.kind is Kind.INT:
            if self.maximum is not None:
                return f"{self.minimum}–{self.maximum}"
            return f"≥ {self.minimum}"
        return str(self.kind.value)


def _spec(kind: Kind, help: str, **limits: Any) -> dict[str, OptionSpec]:
    """Field metadata carrying the option's spec (its key is filled in from the field name)."""
    return {"option": OptionSpec(kind, help, **limits)}


@dataclass(frozen=True)
class Retention:
    """How many snapshots ``forget`` keeps per period; 0 means "no rule for this period"."""

    keep_last: int = 0
    keep_daily: int = 0
    keep_weekly: int = 0
    keep_monthly: int = 0
    keep_yearly: int = 0

    def is_empty(self) -> bool:
        """True when no rule is set (``forget`` then keeps everything)."""
        return not any(dataclasses.astuple(self))

    def as_dict(self) -> dict[str, int]:
        """The rules as a plain mapping."""
        return dataclasses.asdict(self)


RETENTION_KEYS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Retention))


@dataclass(frozen=True)
class BackupSet:
    """The effective options of one backup set (``name`` is "" for an ad-hoc run)."""

    name: str = ""
    type: str = field(
        default="files", metadata=_spec(Kind.CHOICE, "what the set backs up", choices=SET_TYPES)
    )
    sources: list[str] = field(
        default_factory=list,
        metadata=_spec(Kind.STR_LIST, "paths to back up (sqlite: database files)"),
    )
    exclude: list[str] = field(
        default_factory=list,
        metadata=_spec(Kind.STR_LIST, "exclude globs (`*`, `?`, `[...]`, `**`; a leading / anchors)"),
    )
    exclude_if_present: list[str] = field(
        default_factory=lambda: ["CACHEDIR.TAG"],
        metadata=_spec(Kind.STR_LIST, "skip directories holding one of these files (NAME or NAME:HEADER)"),
    )
    use_default_excludes: bool = field(
        default=True, metadata=_spec(Kind.BOOL, "also apply the built-in list of system and irrelevant files")
    )
    one_file_system: bool = field(
        default=False, metadata=_spec(Kind.BOOL, "do not cross into other mounted file systems")
    )
    open_files: str = field(
        default="try-deny-write", metadata=_spec(Kind.CHOICE, "open-file strategy", choices=OPEN_FILES_VALUES)
    )
    retry_times: int = field(
        default=3, metadata=_spec(Kind.INT, "retries of a file whose read failed", minimum=0, maximum=10)
    )
    retry_interval: int = field(
        default=10, metadata=_spec(Kind.INT, "seconds between retries", minimum=0, maximum=999)
    )
    retry_on_change: bool = field(
        default=False, metadata=_spec(Kind.BOOL, "also retry files that changed while read")
    )
    snapshot: str = field(
        default="off", metadata=_spec(Kind.CHOICE, "volume snapshots", choices=SNAPSHOT_VALUES)
    )
    pre_snapshot: str | None = field(
        default=None, metadata=_spec(Kind.OPT_STR, "command run before snapshots are taken")
    )
    post_snapshot: str | None = field(
        default=None, metadata=_spec(Kind.OPT_STR, "command run after snapshots are taken")
    )
    stop_on_errors: int = field(
        default=0,
        metadata=_spec(Kind.INT, "abort the set after this many failed files (0 = never)", minimum=0),
    )
    read_concurrency: int = field(
        default=1,
        metadata=_spec(
            Kind.INT, "files read in parallel (restic's --read-concurrency)", minimum=1, maximum=64
        ),
    )
    sqlite_aware: bool = field(
        default=True,
        metadata=_spec(
            Kind.BOOL,
            "copy SQLite databases in use through SQLite (false: read their files one by one, suspect)",
        ),
    )
    detailed_log: bool = field(
        default=False, metadata=_spec(Kind.BOOL, "record every file in the activity log, not only problems")
    )
    tags: list[str] = field(
        default_factory=list, metadata=_spec(Kind.STR_LIST, "tags added to every snapshot of the set")
    )
    schedule: str | None = field(default=None, metadata=_spec(Kind.SCHEDULE, "when the daemon runs the set"))
    retention: Retention = field(
        default_factory=Retention, metadata=_spec(Kind.RETENTION, "snapshots kept by forget (keep_last …)")
    )
    # Timing, hooks and notifications of scheduled runs (daemon and systemd timers).
    window: str | None = field(
        default=None, metadata=_spec(Kind.WINDOW, "hours a scheduled run may start in (else it is missed)")
    )
    stop_at: str | None = field(
        default=None,
        metadata=_spec(Kind.TIME_OF_DAY, "a run still going then stops and commits a partial snapshot"),
    )
    jitter: int = field(
        default=0,
        metadata=_spec(Kind.INT, "seconds of delay, fixed per set and host", minimum=0, maximum=86400),
    )
    timezone: str | None = field(
        default=None, metadata=_spec(Kind.TIMEZONE, "time zone of schedule, window, stop_at (default: local)")
    )
    overlap: str = field(
        default="queue",
        metadata=_spec(Kind.CHOICE, "a run due while the set runs: queue or skip", choices=OVERLAP_VALUES),
    )
    before_backup: str | None = field(
        default=None, metadata=_spec(Kind.OPT_STR, "command run first; failing, it prevents the run")
    )
    after_backup: str | None = field(
        default=None, metadata=_spec(Kind.OPT_STR, "command run after a run that wrote a snapshot")
    )
    on_failure: str | None = field(
        default=None, metadata=_spec(Kind.OPT_STR, "command run after a run that failed")
    )
    notify: list[str] = field(
        default_factory=list, metadata=_spec(Kind.STR_LIST, "URLs pinged at start, success and failure")
    )
    notify_start_suffix: str = field(
        default="/start", metadata=_spec(Kind.STR, "added to a notify URL for the start ping")
    )
    notify_fail_suffix: str = field(
        default="/fail", metadata=_spec(Kind.STR, "added to a notify URL for the failure ping")
    )
    notify_timeout: int = field(
        default=10, metadata=_spec(Kind.INT, "seconds a notification may take", minimum=1, maximum=300)
    )
    forget_after_backup: bool = field(
        default=False, metadata=_spec(Kind.BOOL, "apply retention after a successful scheduled run")
    )
    databases: list[Any] | str = field(
        default_factory=list,
        metadata=_spec(
            Kind.DATABASES,
            "databases in the snapshot: sqlite sets: files (paths or globs) copied through SQLite; "
            "postgresql, mariadb and mixed sets: dumped",
        ),
    )
    host: str | None = field(
        default=None, metadata=_spec(Kind.OPT_STR, "database server host (postgresql: or socket directory)")
    )
    port: int = field(
        default=0,
        metadata=_spec(Kind.INT, "database server port (0: the tool's default)", minimum=0, maximum=65535),
    )
    socket: str | None = field(default=None, metadata=_spec(Kind.OPT_STR, "mariadb: server socket path"))
    user: str | None = field(default=None, metadata=_spec(Kind.OPT_STR, "database user name"))
    password_file: str | None = field(
        default=None,
        metadata=_spec(
            Kind.OPT_STR, "file holding the database password (else .pgpass/PGPASSFILE, ~/.my.cnf)"
        ),
    )
    options: list[str] = field(
        default_factory=list, metadata=_spec(Kind.STR_LIST, "extra options passed to pg_dump / mariadb-dump")
    )
    pg_bin_dir: str | None = field(
        default=None,
        metadata=_spec(
            Kind.OPT_STR,
            "postgresql: directory of pg_dump, pg_dumpall, pg_restore, psql, createdb (default: PATH); "
            "e.g. /usr/lib/postgresql/17/bin for a server newer than the default pg_dump",
        ),
    )
    lock_wait_timeout: int = field(
        default=DEFAULT_LOCK_WAIT_TIMEOUT,
        metadata=_spec(
            Kind.INT,
            "postgresql: seconds pg_dump waits for a table another session locks (0: no limit)",
            minimum=0,
            maximum=86400,
        ),
    )

    def with_overrides(self, **values: Any) -> BackupSet:
        """A copy with the given options replaced, validated exactly like the file.

        Values may be typed (``retry_times=5``) or command-line text (``retry_times="5"``, lists
        as comma-separated text); ``None`` means "not given" and is ignored. Raises
        ``ConfigError`` naming the flag and the allowed values.
        """
        return dataclasses.replace(self, **overrides_to_values(values))

    def database_servers(self) -> list[DatabaseServer]:
        """The database servers this set dumps into its snapshot (none for a plain files set)."""
        return servers_of(
            self.name,
            self.type,
            self.databases,
            host=self.host,
            port=self.port,
            socket=self.socket,
            user=self.user,
            password_file=self.password_file,
            options=self.options,
            pg_bin_dir=self.pg_bin_dir,
            lock_wait_timeout=self.lock_wait_timeout,
        )

    def schedule_parsed(self) -> Schedule | None:
        """The parsed :class:`~shadowvault.config.schedule.Schedule`, or ``None``."""
        return parse_schedule(self.schedule) if self.schedule is not None else None


OPTIONS: dict[str, OptionSpec] = {
    f.name: dataclasses.replace(f.metadata["option"], key=f.name)
    for f in dataclasses.fields(BackupSet)
    if "option" in f.metadata
}


@dataclass(frozen=True)
class Connection:
    """How every command talks to the repository, whatever set it runs: restic's global
    ``--limit-upload`` / ``--limit-download`` (same unit, KiB/s; 0 is no limit)."""

    limit_upload: int = field(
        default=0,
        metadata=_spec(Kind.INT, "KiB/s at most written to the repository (0: no limit)", minimum=0),
    )
    limit_download: int = field(
        default=0,
        metadata=_spec(Kind.INT, "KiB/s at most read from the repository (0: no limit)", minimum=0),
    )


CONNECTION_OPTIONS: dict[str, OptionSpec] = {
    f.name: dataclasses.replace(f.metadata["option"], key=f.name) for f in dataclasses.fields(Connection)
}
"""The global options of every command that opens a repository (flags only, no file keys)."""


def default_value(key: str) -> Any:
    """The built-in default of option ``key`` (a fresh copy for lists)."""
    f = next(f for f in (*dataclasses.fields(BackupSet), *dataclasses.fields(Connection)) if f.name == key)
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default


def toml_repr(value: Any) -> str:
    """Render a value the way it would be written in TOML (for messages and ``sets show``)."""
    if value is None:
        return "(not set)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, Retention):
        value = value.as_dict()
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml_repr(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_repr(v) for v in value) + "]"
    return str(value)


def _int_problem(spec: OptionSpec, raw: Any) -> str | None:
    if isinstance(raw, bool) or not isinstance(raw, int):
        return "must be an integer"
    too_low = spec.minimum is not None and raw < spec.minimum
    too_high = spec.maximum is not None and raw > spec.maximum
    if too_low or too_high:
        return f"is out of range: allowed {spec.allowed()}"
    return None


def _glob_problem(pattern: str) -> str | None:
    # fs.excludes is the real parser but config may not import fs; this catches the common slip.
    depth = 0
    escaped = False
    for ch in pattern:
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == "[" and depth == 0:
            depth = 1
        elif ch == "]" and depth:
            depth = 0
    if depth:
        return f"has an unclosed '[' in {pattern!r}"
    if not pattern.strip("/"):
        return "has an empty pattern"
    return None


def check_value(spec: OptionSpec, raw: Any) -> tuple[Any, str | None]:
    """Validate ``raw`` (as read from TOML) against ``spec``.

    Returns ``(value, None)`` with the value to store, or ``(raw, problem)`` where problem
    completes the sentence "``key = value`` …", e.g. "is out of range: allowed 0–10".
    """
    kind = spec.kind
    if kind is Kind.INT:
        return raw, _int_problem(spec, raw)
    if kind is Kind.BOOL:
        return (raw, None) if isinstance(raw, bool) else (raw, "must be true or false")
    if kind is Kind.OPT_STR and raw == "":
        return None, None  # TOML has no null: an empty string unsets an inherited command
    if kind in (Kind.STR, Kind.OPT_STR):
        return (raw, None) if isinstance(raw, str) else (raw, "must be a string")
    if kind is Kind.CHOICE:
        if not isinstance(raw, str):
            return raw, f"must be a string, one of {spec.allowed()}"
        if raw not in spec.choices:
            return raw, f"is not allowed: choose one of {spec.allowed()}"
        return raw, None
    if kind is Kind.STR_LIST:
        if not isinstance(raw, list) or not all(isinstance(v, str) for v in raw):
            return raw, "must be a list of strings"
        if spec.key == "exclude":
            for pattern in raw:
                problem = _glob_problem(pattern)
                if problem:
                    return raw, problem
        if spec.key == "notify":
            for url in raw:
                if not url.startswith(("http://", "https://")):
                    return raw, f"has {url!r}, which is not an http:// or https:// URL"
        return list(raw), None
    if kind is Kind.SCHEDULE:
        if raw == "":
            return None, None  # unsets an inherited schedule
        if not isinstance(raw, str):
            return raw, "must be a string"
        try:
            parse_schedule(raw)
        except ValueError as e:
            return raw, f"is not a valid schedule ({e}); write {SCHEDULE_GRAMMAR}"
        return raw, None
    if kind is Kind.RETENTION:
        return _check_retention(raw)
    if kind in _TIMING_PARSERS:
        if raw == "":
            return None, None  # unsets an inherited value
        if not isinstance(raw, str):
            return raw, "must be a string"
        try:
            _TIMING_PARSERS[kind](raw)
        except ValueError as e:
            return raw, f"is not valid ({e}); write {spec.allowed()}"
        return raw, None
    if kind is Kind.DATABASES:
        return check_databases_value(raw)
    raise AssertionError(kind)  # every Kind is handled above


_TIMING_PARSERS: dict[Kind, Any] = {
    Kind.WINDOW: parse_window,
    Kind.TIME_OF_DAY: parse_time_of_day,
    Kind.TIMEZONE: parse_timezone,
}


def _check_retention(raw: Any) -> tuple[Any, str | None]:
    if isinstance(raw, Retention):
        return raw, None
    if not isinstance(raw, dict):
        return raw, f"must be a table with keys {', '.join(RETENTION_KEYS)}"
    for k, v in raw.items():
        if k not in RETENTION_KEYS:
            return raw, f"has unknown key {k!r}: allowed {', '.join(RETENTION_KEYS)}"
        if isinstance(v, bool) or not isinstance(v, int):
            return raw, f"{k} must be an integer"
        if v < 0:
            return raw, f"{k} = {v} is out of range: allowed ≥ 0"
    return Retention(**raw), None


_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})


def parse_cli_value(key: str, text: str) -> Any:
    """Turn command-line text into the TOML-typed value for option ``key`` (before validation).

    Integers and booleans are parsed (``yes``/``no``/``true``/``false``/``1``/``0``), lists are
    comma-separated, an empty string clears an optional string, retention is
    ``keep_daily=7,keep_weekly=4``. Text that does not parse is returned unchanged so that
    :func:`check_value` reports it with the usual wording.
    """
    spec = OPTIONS[key]
    if spec.kind is Kind.INT:
        stripped = text.strip()
        return int(stripped) if stripped.lstrip("-").isdigit() else text
    if spec.kind is Kind.BOOL:
        low = text.strip().lower()
        return True if low in _TRUE else False if low in _FALSE else text
    if spec.kind is Kind.STR_LIST:
        return [item.strip() for item in text.split(",") if item.strip()]
    if spec.kind is Kind.OPT_STR:
        return text or None
    if spec.kind is Kind.RETENTION:
        result: dict[str, Any] = {}
        for item in text.split(","):
            k, sep, v = item.partition("=")
            if not sep:
                return text
            v = v.strip()
            result[k.strip()] = int(v) if v.isdigit() else v
        return result
    return text


def closest(word: str, candidates: list[str] | tuple[str, ...]) -> str | None:
    """The candidate most like ``word`` (for "did you mean …?"), or ``None`` if none is close."""
    matches = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return matches[0] if matches else None


def overrides_to_values(values: dict[str, Any]) -> dict[str, Any]:
    """Validate command-line overrides (typed or text) into field values; ``ConfigError`` names
    the flag, e.g. "command line: --retry-times 12 is out of range: allowed 0–10"."""
    result: dict[str, Any] = {}
    for key, raw in values.items():
        spec = OPTIONS.get(key)
        if spec is None:
            hint = closest(key, list(OPTIONS))
            suggestion = f" (did you mean {OPTIONS[hint].cli_flag}?)" if hint else ""
            raise ConfigError(f"command line: unknown option {key!r}{suggestion}")
        if raw is None:
            continue
        if isinstance(raw, str) and spec.kind not in (Kind.STR, Kind.CHOICE, Kind.SCHEDULE, *_TIMING_PARSERS):
            raw = parse_cli_value(key, raw)
        value, problem = check_value(spec, raw)
        if problem:
            shown = raw if isinstance(raw, str) else toml_repr(raw)
            raise ConfigError(f"command line: {spec.cli_flag} {shown} {problem}")
        result[key] = value
    return result
