"""Backup sets from one TOML file: load, validate, merge ``[defaults]`` into ``[sets.NAME]``.

Concepts:

* **Option schema** (:mod:`.schema`) — ``BackupSet`` is a frozen dataclass whose fields carry an
  :class:`OptionSpec` (type, default, allowed range or values, help). It is the single source for
  the file's keys, validation messages, ``sets show`` and command-line overrides
  (:meth:`BackupSet.with_overrides`, :func:`parse_cli_value`, ``OptionSpec.cli_flag``).
* **Inheritance** (:mod:`.load`) — built-in default ← ``[defaults]`` ← ``[sets.NAME]``; a set
  names only what differs. :meth:`Config.effective` returns an :class:`EffectiveSet` with the
  merged ``values`` and the ``origin`` of each ("set", "defaults", "built-in", "command line").
* **Errors with places** — every problem is a ``ConfigError`` line
  ``FILE:LINE: [sets.web] retry_times = 12 is out of range: allowed 0–10``; unknown keys get a
  "did you mean" suggestion. Lines are found by :class:`.locate.KeyLocator`, because ``tomllib``
  keeps no positions.
* **Schedules** (:mod:`.schedule`) — ``hourly``/``daily``/``weekly``/``monthly`` shorthands or a
  five-field cron expression evaluated by ``cronsim``; ``window``, ``stop_at``, ``timezone``
  are parsed there too (planning runs is the engine's ``timing``).

Values that name enums elsewhere (``open_files``, ``snapshot``) stay strings here, validated
against :data:`OPEN_FILES_VALUES` and :data:`SNAPSHOT_VALUES`; the engine converts them.
"""

from __future__ import annotations

from shadowvault.config.databases import DATABASE_TYPES, DatabaseServer
from shadowvault.config.load import (
    CONFIG_ENV,
    Config,
    EffectiveSet,
    Origin,
    RepositoryConfig,
    load_config,
    parse_config,
    resolve_config_path,
)
from shadowvault.config.schedule import SCHEDULE_GRAMMAR, Schedule, parse_schedule
from shadowvault.config.schema import (
    OPEN_FILES_VALUES,
    OPTIONS,
    SET_TYPES,
    SNAPSHOT_VALUES,
    BackupSet,
    Kind,
    OptionSpec,
    Retention,
    parse_cli_value,
)

__all__ = [
    "CONFIG_ENV",
    "DATABASE_TYPES",
    "OPEN_FILES_VALUES",
    "OPTIONS",
    "SCHEDULE_GRAMMAR",
    "SET_TYPES",
    "SNAPSHOT_VALUES",
    "BackupSet",
    "Config",
    "DatabaseServer",
    "EffectiveSet",
    "Kind",
    "OptionSpec",
    "Origin",
    "RepositoryConfig",
    "Retention",
    "Schedule",
    "load_config",
    "parse_cli_value",
    "parse_config",
    "parse_schedule",
    "resolve_config_path",
]
