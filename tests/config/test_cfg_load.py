"""Loading, inheritance, origins and file:line validation errors of the configuration file."""

# The expected messages are kept whole, one per line, so that they read like the real output.
# ruff: noqa: E501

from __future__ import annotations

import os
import re
import textwrap
from pathlib import Path

import pytest

from shadowvault.config import (
    OPTIONS,
    BackupSet,
    Config,
    Retention,
    load_config,
    parse_config,
    resolve_config_path,
)
from shadowvault.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "config.toml"
    p.write_text(textwrap.dedent(text).lstrip("\n"))
    return p


INHERITANCE = """
[repository]
path = "repo"
password_file = "~/pw"

[defaults]
retry_times = 5
exclude = ["*.log"]
open_files = "deny-write"
retention = { keep_daily = 7, keep_weekly = 4 }

[sets.web]
sources = ["/var/www"]
retry_interval = 30
open_files = "allow-write"
tags = ["web"]

[sets.db]
type = "sqlite"
sources = ["/var/lib/app/app.db"]
snapshot = "required"
pre_snapshot = "fsfreeze -f /var/lib"
retention.keep_weekly = 8
"""


def test_inheritance_values_and_origins(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, INHERITANCE))
    assert cfg.set_names() == ["web", "db"]
    assert cfg.repository.path == str(tmp_path / "repo")  # relative to the file
    assert cfg.repository.password_file == os.path.expanduser("~/pw")

    web = cfg.effective("web")
    assert web.values.name == "web"
    assert (web.values.retry_times, web.values.retry_interval) == (5, 30)
    assert web.values.open_files == "allow-write"
    assert web.values.exclude == ["*.log"]
    assert web.values.retention == Retention(keep_daily=7, keep_weekly=4)
    assert web.values.snapshot == "off"
    assert web.origin["retry_times"] == "defaults"
    assert web.origin["retry_interval"] == "set"
    assert web.origin["open_files"] == "set"
    assert web.origin["snapshot"] == "built-in"
    assert web.origin["retention"] == "defaults"

    db = cfg.effective("db")
    assert db.values.type == "sqlite" and db.values.open_files == "deny-write"
    assert db.values.retention == Retention(keep_daily=7, keep_weekly=8)  # merged key by key
    assert db.origin["retention.keep_weekly"] == "set"
    assert db.origin["retention.keep_daily"] == "defaults"
    assert db.origin["retention"] == "set"
    assert db.values.pre_snapshot == "fsfreeze -f /var/lib" and db.values.post_snapshot is None
    assert cfg.hot_backup_sources() == ["/var/lib/app/app.db"]

    # every option has an origin, and rows() lists each once
    assert set(OPTIONS) <= set(web.origin)
    keys = [row[0] for row in web.rows()]
    assert len(keys) == len(set(keys)) and "retention.keep_daily" in keys and "retry_times" in keys

    defaults = cfg.defaults_set()
    assert defaults.values.name == "" and defaults.values.retry_times == 5
    assert defaults.origin["retry_times"] == "defaults" and defaults.origin["tags"] == "built-in"


def test_unknown_set_suggests(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, INHERITANCE))
    with pytest.raises(
        ConfigError, match=r"no backup set 'wbe' \(did you mean 'web'\?\); defined sets: web, db"
    ):
        cfg.effective("wbe")


def test_overrides_validate_and_mark_origin(tmp_path: Path) -> None:
    web = load_config(write(tmp_path, INHERITANCE)).effective("web")
    over = web.with_overrides(retry_times="7", detailed_log=True, snapshot=None, tags="a, b")
    assert over.values.retry_times == 7 and over.values.detailed_log and over.values.tags == ["a", "b"]
    assert over.origin["retry_times"] == "command line" and over.origin["snapshot"] == "built-in"
    assert web.values.retry_times == 5  # the original is unchanged
    with pytest.raises(ConfigError, match=r"^command line: --retry-times 12 is out of range: allowed 0–10$"):
        web.with_overrides(retry_times=12)
    with pytest.raises(ConfigError, match=r"--open-files deny is not allowed: choose one of try-deny-write"):
        web.values.with_overrides(open_files="deny")
    with pytest.raises(ConfigError, match=r"--detailed-log maybe must be true or false"):
        web.values.with_overrides(detailed_log="maybe")
    with pytest.raises(
        ConfigError, match=r"unknown option 'retry_interal' \(did you mean --retry-interval\?\)"
    ):
        BackupSet().with_overrides(retry_interal=3)
    assert BackupSet().with_overrides(retention="keep_last=3").retention == Retention(keep_last=3)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "[sets.web]\nretry_times = 12\n",
            r":2: \[sets.web\] retry_times = 12 is out of range: allowed 0–10$",
        ),
        (
            "[defaults]\n\nretry_interval = 1000\n",
            r":3: \[defaults\] retry_interval = 1000 is out of range: allowed 0–999$",
        ),
        (
            "[sets.web]\nretry_time = 3\n",
            r":2: \[sets.web\] unknown key 'retry_time' \(did you mean 'retry_times'\?\)$",
        ),
        ('[sets.web]\nretry_times = "3"\n', r':2: \[sets.web\] retry_times = "3" must be an integer$'),
        ("[sets.web]\nretry_times = true\n", r":2: \[sets.web\] retry_times = true must be an integer$"),
        (
            "[sets.web]\nstop_on_errors = -1\n",
            r":2: \[sets.web\] stop_on_errors = -1 is out of range: allowed ≥ 0$",
        ),
        ("[sets.web]\none_file_system = 1\n", r":2: \[sets.web\] one_file_system = 1 must be true or false$"),
        (
            '[sets.web]\nsnapshot = "yes"\n',
            r':2: \[sets.web\] snapshot = "yes" is not allowed: choose one of off, auto, required$',
        ),
        (
            '[sets.web]\ntype = "mysql"\n',
            r"is not allowed: choose one of files, sqlite, postgresql, mariadb$",
        ),
        (
            '[sets.web]\nexclude = "*.log"\n',
            r':2: \[sets.web\] exclude = "\*.log" must be a list of strings$',
        ),
        ('[sets.web]\nexclude = ["[abc"]\n', r"exclude = \[\"\[abc\"\] has an unclosed '\['"),
        ('[sets.web]\ntags = ["a", 1]\n', r':2: \[sets.web\] tags = \["a", 1\] must be a list of strings$'),
        (
            '[sets.web]\nschedule = "dayly 02:00"\n',
            r":2: \[sets.web\] schedule = \"dayly 02:00\" is not a valid schedule \(unknown form 'dayly'\)",
        ),
        ('[sets.web]\nschedule = "daily 25:00"\n', r"is not a valid schedule \('25:00' is not a time of day"),
        (
            "[sets.web]\nkeep_daily = 3\n",
            r"unknown key 'keep_daily' \(did you mean 'retention.keep_daily'\?\)$",
        ),
        (
            "[sets.web.retention]\nkeep_dayly = 3\n",
            r":2: \[sets.web\] unknown key 'retention.keep_dayly' \(did you mean 'keep_daily'\?\)$",
        ),
        (
            "[sets.web]\nretention = { keep_last = -2 }\n",
            r":2: \[sets.web\] retention.keep_last = -2 is out of range: allowed ≥ 0$",
        ),
        ("[sets.web]\nretention = 5\n", r":2: \[sets.web\] retention = 5 must be a table of keep_\* counts$"),
        (
            '[sets.web]\nsources = ["data"]\n',
            r':2: \[sets.web\] sources = \["data"\] must hold absolute paths: \'data\' is relative$',
        ),
        ('[sets."my set"]\nretry_times = 1\n', r":1: \[sets\] set name 'my set' is not allowed"),
        ("[sets]\nweb = 3\n", r":2: \[sets\] web must be a table$"),
        ("[default]\nretry_times = 1\n", r":1: unknown section \[default\] \(did you mean 'defaults'\?\)$"),
        (
            '[repository]\npath = ""\nkey = "x"\n',
            r":2: \[repository\] path = \"\" must be a non-empty string\n.*:3: \[repository\] unknown key 'key'",
        ),
        # dotted keys and inline tables are located too
        ("[sets]\nweb.retry_times = 11\n", r":2: \[sets.web\] retry_times = 11 is out of range"),
        (
            '[sets]\n# comment = 1\nweb = { sources = ["/x"], retry_times = 11 }\n',
            r":3: \[sets.web\] retry_times = 11 is out of range",
        ),
    ],
)
def test_each_error_has_file_line_and_allowed_values(tmp_path: Path, body: str, expected: str) -> None:
    path = write(tmp_path, body)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}:"), message
    assert re.search(expected, message, re.S), message
    assert info.value.exit_code == 2


def test_line_numbers_skip_multiline_values(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '''
        [defaults]
        exclude = [
          "retry_times = 1",
          "*.tmp",
        ]
        pre_snapshot = """
        retry_times = 99
        """

        [sets.web]
        sources = ["/srv"]
        retry_times = 42
        ''',
    )
    with pytest.raises(ConfigError, match=r"config.toml:12: \[sets.web\] retry_times = 42 is out of range"):
        load_config(path)


def test_all_problems_reported_at_once(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [defaults]
        retry_times = 11
        sources = ["rel"]

        [sets.a]
        retry_interval = -1

        [sets.b]
        open_files = "x"
        """,
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    lines = str(info.value).splitlines()
    assert [line.split(": ", 1)[0] for line in lines] == [f"{path}:{n}" for n in (2, 3, 6, 9)]
    assert sum("is relative" in line for line in lines) == 1  # inherited problem reported once


def test_syntax_error_has_line(tmp_path: Path) -> None:
    path = write(tmp_path, '[defaults]\nretry_times = 3\nexclude = ["a",\n\n[sets.x]\n')
    with pytest.raises(ConfigError, match=rf"^{path}:\d+: TOML syntax error: .*\(column \d+\)"):
        load_config(path)
    dup = write(tmp_path, "[sets.a]\nretry_times = 1\nretry_times = 2\n")
    with pytest.raises(ConfigError, match=rf"^{dup}:3: TOML syntax error"):
        load_config(dup)


def test_path_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    explicit = write(tmp_path, "[sets.a]\nretry_times = 1\n")
    env_file = tmp_path / "env.toml"
    env_file.write_text("[sets.b]\nretry_times = 2\n")
    monkeypatch.setenv("SHADOWVAULT_CONFIG", str(env_file))
    assert load_config(explicit).set_names() == ["a"]
    assert load_config().set_names() == ["b"]
    assert resolve_config_path() == (env_file, True)
    env_file.unlink()
    with pytest.raises(ConfigError, match="configuration file not found"):
        load_config()
    monkeypatch.delenv("SHADOWVAULT_CONFIG")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    default_path, explicit_flag = resolve_config_path()
    assert default_path == tmp_path / "xdg" / "shadowvault" / "config.toml" and not explicit_flag
    empty = load_config()  # no file at the default place: built-ins only
    assert isinstance(empty, Config) and empty.path is None and empty.set_names() == []
    assert empty.defaults_set().values == BackupSet()
    default_path.parent.mkdir(parents=True)
    default_path.write_text("[sets.c]\n")
    assert load_config().set_names() == ["c"]


def test_unreadable_and_non_utf8(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_bytes(b"[sets.a]\n# caf\xe9\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(bad)
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path)  # a directory


def test_empty_string_unsets_inherited_command_and_schedule() -> None:
    cfg = parse_config(
        '[defaults]\npre_snapshot = "sync"\nschedule = "daily 02:00"\n[sets.a]\npre_snapshot = ""\nschedule = ""\n'
        "[sets.b]\n"
    )
    assert cfg.effective("a").values.pre_snapshot is None and cfg.effective("a").values.schedule is None
    assert cfg.effective("b").values.pre_snapshot == "sync"
    sched = cfg.effective("b").values.schedule_parsed()
    assert sched is not None and sched.cron == "0 2 * * *"


def test_postgresql_databases_are_names_and_tilde_expands() -> None:
    # Database sets name their databases in `databases` (issue 12); they have no path sources.
    cfg = parse_config(
        '[sets.pg]\ntype = "postgresql"\ndatabases = ["appdb"]\n[sets.h]\nsources = ["~/docs"]\n'
    )
    assert cfg.effective("pg").values.databases == ["appdb"]
    assert cfg.effective("h").values.sources == [os.path.expanduser("~/docs")]
