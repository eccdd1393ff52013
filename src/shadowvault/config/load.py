"""Load the configuration file: find it, parse it, validate it, merge defaults into sets.

File location, first that applies: the ``path`` argument (``--config``), ``$SHADOWVAULT_CONFIG``,
``platformdirs.user_config_dir("shadowvault")/config.toml``. A missing file is an error when it
was named explicitly (argument or environment) and an empty configuration otherwise, so that
ad-hoc ``shadowvault backup PATH`` works without one.

Layout::

    [repository]            path, password_file (relative to the file's directory; ~ expanded)
    [defaults]              any option of BackupSet; applies to every set
    [sets.NAME]             any option; overrides [defaults] for that set only
    [sets.NAME.retention]   (or retention = { … }) merged key by key over [defaults.retention]

Every problem found is reported, one per line, in a single ``ConfigError``:
``FILE:LINE: [sets.web] retry_times = 12 is out of range: allowed 0–10``.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import platformdirs

from shadowvault.config.databases import PG_ONLY_KEYS, type_problem
from shadowvault.config.locate import KeyLocator
from shadowvault.config.schema import (
    OPTIONS,
    RETENTION_KEYS,
    BackupSet,
    Kind,
    OptionSpec,
    Retention,
    check_value,
    closest,
    default_value,
    overrides_to_values,
    toml_repr,
)
from shadowvault.errors import ConfigError

__all__ = [
    "CONFIG_ENV",
    "Config",
    "EffectiveSet",
    "Origin",
    "RepositoryConfig",
    "load_config",
    "parse_config",
    "resolve_config_path",
]

CONFIG_ENV = "SHADOWVAULT_CONFIG"
Origin = Literal["set", "defaults", "built-in", "command line"]

_SECTIONS = ("repository", "defaults", "sets")
_REPOSITORY_KEYS = ("path", "password_file")
_SET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
_SYNTAX_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)")
# Set types whose sources are file-system paths (database servers have no sources).
_PATH_SOURCE_TYPES = ("files", "sqlite")
_RETENTION_SPECS = {
    k: OptionSpec(Kind.INT, f"retention rule {k}", minimum=0, key=f"retention.{k}") for k in RETENTION_KEYS
}


@dataclass(frozen=True)
class RepositoryConfig:
    """The ``[repository]`` table: where the repository is and where its password is kept."""

    path: str | None = None
    password_file: str | None = None


@dataclass(frozen=True)
class EffectiveSet:
    """A set's options after merging, and where each value came from.

    ``origin`` maps every option key (and ``retention.keep_*``) to "set", "defaults",
    "built-in" or "command line".
    """

    values: BackupSet
    origin: dict[str, Origin]

    def with_overrides(self, **values: Any) -> EffectiveSet:
        """Apply command-line overrides (see :meth:`BackupSet.with_overrides`), marking them."""
        checked = overrides_to_values(values)
        origin = dict(self.origin)
        for key in checked:
            origin[key] = "command line"
            if key == "retention":
                origin.update({f"retention.{k}": "command line" for k in RETENTION_KEYS})
        return EffectiveSet(dataclasses.replace(self.values, **checked), origin)

    def rows(self) -> list[tuple[str, str, Origin, str]]:
        """``(key, value as TOML, origin, help)`` for every option, in schema order (``sets show``)."""
        result: list[tuple[str, str, Origin, str]] = []
        for key, spec in OPTIONS.items():
            if key == "retention":
                retention = self.values.retention
                for sub in RETENTION_KEYS:
                    full = f"retention.{sub}"
                    result.append((full, str(getattr(retention, sub)), self.origin[full], spec.help))
                continue
            result.append((key, toml_repr(getattr(self.values, key)), self.origin[key], spec.help))
        return result


@dataclass(frozen=True)
class Config:
    """A loaded configuration file; ``path`` is ``None`` when no file exists (all built-ins)."""

    path: Path | None
    repository: RepositoryConfig = field(default_factory=RepositoryConfig)
    _sets: dict[str, EffectiveSet] = field(default_factory=dict)
    _defaults: EffectiveSet = field(
        default_factory=lambda: EffectiveSet(BackupSet(), {k: "built-in" for k in _origin_keys()})
    )

    def set_names(self) -> list[str]:
        """Names of the backup sets, in the order the file defines them."""
        return list(self._sets)

    def effective(self, name: str) -> EffectiveSet:
        """The merged options of set ``name``; ``ConfigError`` (with a suggestion) if unknown."""
        try:
            return self._sets[name]
        except KeyError:
            pass
        where = str(self.path) if self.path else "configuration"
        hint = closest(name, self.set_names())
        known = ", ".join(self.set_names()) or "none"
        suggestion = f" (did you mean {hint!r}?)" if hint else ""
        raise ConfigError(f"{where}: no backup set {name!r}{suggestion}; defined sets: {known}") from None

    def defaults_set(self) -> EffectiveSet:
        """``[defaults]`` over the built-ins, for runs that name no set (``name`` is "")."""
        return self._defaults

    def hot_backup_sources(self) -> list[str]:
        """Database files backed up by ``sqlite`` sets — file-system sets leave them out."""
        return [
            src for eff in self._sets.values() if eff.values.type == "sqlite" for src in eff.values.sources
        ]


def _origin_keys() -> list[str]:
    return (
        [k for k in OPTIONS if k != "retention"] + ["retention"] + [f"retention.{k}" for k in RETENTION_KEYS]
    )


def resolve_config_path(path: Path | None = None) -> tuple[Path, bool]:
    """The configuration file to read, and whether it was named explicitly (argument or env)."""
    if path is not None:
        return Path(path).expanduser(), True
    env = os.environ.get(CONFIG_ENV)
    if env:
        return Path(env).expanduser(), True
    return Path(platformdirs.user_config_dir("shadowvault")) / "config.toml", False


def load_config(path: Path | None = None) -> Config:
    """Find, read and validate the configuration (see the module docstring); ``ConfigError``."""
    resolved, explicit = resolve_config_path(path)
    try:
        text = resolved.read_text(encoding="utf-8")
    except FileNotFoundError:
        if explicit:
            raise ConfigError(f"{resolved}: configuration file not found") from None
        return Config(path=None)
    except UnicodeDecodeError as e:
        raise ConfigError(f"{resolved}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise ConfigError(f"{resolved}: cannot read configuration file: {e.strerror}") from None
    return parse_config(text, resolved)


def parse_config(text: str, path: Path | str = "<config>") -> Config:
    """Validate configuration ``text``; ``path`` is used in messages and for relative paths."""
    path = Path(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        message = str(e)
        pos = _SYNTAX_POSITION.search(message)
        if pos:
            where = f"{path}:{pos.group(1)}"
            message = _SYNTAX_POSITION.sub("", message) + f" (column {pos.group(2)})"
        else:
            where = str(path)
        raise ConfigError(f"{where}: TOML syntax error: {message}") from None
    return _Validator(text, path).run(data)


class _Validator:
    """Collects every problem of one file, each with its line, then builds the Config."""

    def __init__(self, text: str, path: Path) -> None:
        self.path = path
        self.locator = KeyLocator(text)
        self.problems: list[str] = []

    def _line_of_problem(self, problem: str) -> int:
        head = problem[len(str(self.path)) :].split(": ", 1)[0]
        return int(head[1:]) if head[1:].isdigit() else 0

    def where(self, *key: str) -> str:
        line = self.locator.line_of(*key)
        return f"{self.path}:{line}" if line else str(self.path)

    def problem(self, section: tuple[str, ...], key: str, text: str) -> None:
        label = ".".join(section)
        self.problems.append(f"{self.where(*section, *key.split('.'))}: [{label}] {text}")

    def unknown(self, section: tuple[str, ...], key: str, candidates: list[str]) -> None:
        hint = closest(key, candidates)
        if key in RETENTION_KEYS:
            hint = f"retention.{key}"
        suggestion = f" (did you mean {hint!r}?)" if hint else ""
        if section:
            self.problem(section, key, f"unknown key {key!r}{suggestion}")
        else:
            self.problems.append(f"{self.where(key)}: unknown section [{key}]{suggestion}")

    def run(self, data: dict[str, Any]) -> Config:
        for key in data:
            if key not in _SECTIONS:
                self.unknown((), key, list(_SECTIONS))
        repository = self.repository(data.get("repository", {}))
        defaults = self.options(("defaults",), data.get("defaults", {}))
        sets_raw = data.get("sets", {})
        if not isinstance(sets_raw, dict):
            self.problems.append(f"{self.where('sets')}: [sets] must be a table of [sets.NAME] tables")
            sets_raw = {}
        builtin = EffectiveSet(BackupSet(), {k: "built-in" for k in _origin_keys()})
        defaults_eff = self.merge("", ("defaults",), defaults, {}, builtin)
        sets: dict[str, EffectiveSet] = {}
        for name, raw in sets_raw.items():
            section = ("sets", name)
            if not _SET_NAME.match(name):
                self.problems.append(
                    f"{self.where(*section)}: [sets] set name {name!r} is not allowed: "
                    "use letters, digits, '-' and '_' (starting with a letter or digit)"
                )
                continue
            if not isinstance(raw, dict):
                self.problems.append(f"{self.where(*section)}: [sets] {name} must be a table")
                continue
            own = self.options(section, raw)
            sets[name] = self.merge(name, section, own, defaults, builtin)
        if self.problems:
            # In file order; a relative source inherited from [defaults] is reported once, not per set.
            unique = list(dict.fromkeys(self.problems))
            unique.sort(key=self._line_of_problem)
            raise ConfigError("\n".join(unique))
        return Config(path=self.path, repository=repository, _sets=sets, _defaults=defaults_eff)

    def repository(self, raw: Any) -> RepositoryConfig:
        section = ("repository",)
        if not isinstance(raw, dict):
            self.problems.append(f"{self.where('repository')}: [repository] must be a table")
            return RepositoryConfig()
        values: dict[str, str | None] = {}
        for key, value in raw.items():
            if key not in _REPOSITORY_KEYS:
                self.unknown(section, key, list(_REPOSITORY_KEYS))
            elif not isinstance(value, str) or not value:
                self.problem(section, key, f"{key} = {toml_repr(value)} must be a non-empty string")
            else:
                # Relative to the file, not the working directory: cron and systemd start elsewhere.
                values[key] = str(self.path.parent / Path(value).expanduser())
        return RepositoryConfig(**values)

    def options(self, section: tuple[str, ...], raw: Any) -> dict[str, Any]:
        """Validated values of one ``[defaults]`` / ``[sets.NAME]`` table (retention kept partial)."""
        if not isinstance(raw, dict):
            self.problems.append(f"{self.where(*section)}: [{'.'.join(section)}] must be a table")
            return {}
        values: dict[str, Any] = {}
        for key, value in raw.items():
            spec = OPTIONS.get(key)
            if spec is None:
                self.unknown(section, key, list(OPTIONS))
            elif spec.kind is Kind.RETENTION:
                values[key] = self.retention(section, value)
            else:
                checked, problem = check_value(spec, value)
                if problem:
                    self.problem(section, key, f"{key} = {toml_repr(value)} {problem}")
                else:
                    values[key] = checked
        return values

    def retention(self, section: tuple[str, ...], raw: Any) -> dict[str, int]:
        if not isinstance(raw, dict):
            self.problem(
                section, "retention", f"retention = {toml_repr(raw)} must be a table of keep_* counts"
            )
            return {}
        result: dict[str, int] = {}
        for key, value in raw.items():
            spec = _RETENTION_SPECS.get(key)
            if spec is None:
                hint = closest(key, list(RETENTION_KEYS))
                suggestion = f" (did you mean {hint!r}?)" if hint else ""
                self.problem(section, f"retention.{key}", f"unknown key 'retention.{key}'{suggestion}")
                continue
            checked, problem = check_value(spec, value)
            if problem:
                self.problem(section, spec.key, f"{spec.key} = {toml_repr(value)} {problem}")
            else:
                result[key] = checked
        return result

    def merge(
        self,
        name: str,
        section: tuple[str, ...],
        own: dict[str, Any],
        defaults: dict[str, Any],
        builtin: EffectiveSet,
    ) -> EffectiveSet:
        """Layer built-ins ← [defaults] ← the set's own values, recording each value's origin."""
        origin: dict[str, Origin] = dict(builtin.origin)
        values: dict[str, Any] = {}
        retention: dict[str, int] = {}
        own_label: Origin = "defaults" if section == ("defaults",) else "set"
        layers: list[tuple[dict[str, Any], Origin]] = [(defaults, "defaults"), (own, own_label)]
        for layer, label in layers:
            for key, value in layer.items():
                if key == "retention":
                    for sub, count in value.items():
                        retention[sub] = count
                        origin[f"retention.{sub}"] = label
                else:
                    values[key] = value
                    origin[key] = label
        origin["retention"] = _strongest([origin[f"retention.{k}"] for k in RETENTION_KEYS])
        result = dataclasses.replace(BackupSet(), name=name, **values, retention=Retention(**retention))
        # A set's databases must fit its type (unless the value itself was already refused).
        problem = type_problem(result.type, result.databases, result.sources) if name else None
        refused = f"[{'.'.join(section)}] databases = "
        if problem and not any(refused in p for p in self.problems):
            self.problem(section, "databases", f"databases: {problem}")
        # PostgreSQL-only keys in a mariadb set's own table would be silently ignored ([defaults]
        # may carry them for the run's postgresql sets).
        for key in PG_ONLY_KEYS:
            if name and result.type == "mariadb" and origin.get(key) == own_label:
                self.problem(section, key, f"{key} applies to postgresql sets only: remove it")
        return EffectiveSet(self.check_sources(result, origin, section), origin)

    def check_sources(
        self, bset: BackupSet, origin: dict[str, Origin], section: tuple[str, ...]
    ) -> BackupSet:
        """Expand ``~`` in path sources and insist on absolute paths (cron's cwd is arbitrary)."""
        if bset.type not in _PATH_SOURCE_TYPES:
            return bset
        expanded = [os.path.expanduser(s) for s in bset.sources]
        relative = [s for s in expanded if not os.path.isabs(s)]
        if relative:
            where = section if origin["sources"] == "set" else ("defaults",)
            self.problem(
                where,
                "sources",
                f"sources = {toml_repr(bset.sources)} must hold absolute paths: {relative[0]!r} is relative",
            )
        return dataclasses.replace(bset, sources=expanded)


def _strongest(origins: list[Origin]) -> Origin:
    order: tuple[Origin, ...] = ("command line", "set", "defaults")
    for candidate in order:
        if candidate in origins:
            return candidate
    return "built-in"


# Built-in defaults as plain values, for ``sets show --defaults`` style listings.
BUILTIN_DEFAULTS: dict[str, Any] = {key: default_value(key) for key in OPTIONS}
