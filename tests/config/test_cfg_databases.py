"""Database sets in the configuration: both shapes of `databases`, their validation with file:line,
and the typed servers the engine receives (no server needed)."""

# ruff: noqa: E501

from __future__ import annotations

import textwrap

import pytest

from shadowvault.config import DatabaseServer, parse_config
from shadowvault.engine.hotbackup.dumps import virtual_dir
from shadowvault.engine.sets import backup_options
from shadowvault.errors import ConfigError


def load(text: str):  # type: ignore[no-untyped-def]
    return parse_config(textwrap.dedent(text).lstrip("\n"), "/etc/sv.toml")


def test_server_sets_and_mixed_sets_give_typed_servers() -> None:
    cfg = load(
        """
        [sets.pg]
        type = "postgresql"
        host = "db1"
        port = 5433
        user = "backup"
        password_file = "/root/.pgpw"
        databases = "all"
        options = ["--no-owner"]

        [sets.my]
        type = "mariadb"
        socket = "/run/mysqld/mysqld.sock"
        databases = ["shop", "wiki"]

        [sets.app]
        sources = ["/srv/app"]
        databases = [{ type = "postgresql", databases = ["app"] }, { type = "mariadb", host = "127.0.0.1", port = 3307 }]
        """
    )
    (pg,) = cfg.effective("pg").values.database_servers()
    assert pg == DatabaseServer(
        "postgresql", "db1", 5433, None, "backup", "/root/.pgpw", (), ("--no-owner",), "pg"
    )
    assert pg.all_databases and virtual_dir(pg) == "/.shadowvault/postgresql/db1-5433"
    (my,) = cfg.effective("my").values.database_servers()
    assert my.databases == ("shop", "wiki") and my.socket == "/run/mysqld/mysqld.sock"
    mixed = cfg.effective("app").values.database_servers()
    assert [(s.type, s.databases, s.port, s.set_name) for s in mixed] == [
        ("postgresql", ("app",), 0, "app"),
        ("mariadb", (), 3307, "app"),
    ]
    opts = backup_options(cfg.effective("app").values)
    assert opts.sources == ["/srv/app"] and opts.databases == mixed
    assert backup_options(cfg.effective("pg").values).sources == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            'type = "postgresql"\n',
            '/etc/sv.toml:1: [sets.s] databases: a postgresql set needs databases = ["name", ...] or "all"',
        ),
        (
            'type = "mariadb"\ndatabases = "some"\n',
            '/etc/sv.toml:3: [sets.s] databases = "some" must be "all" or a non-empty list of database names',
        ),
        (
            'type = "postgresql"\ndatabases = [{ type = "postgresql" }]\n',
            '/etc/sv.toml:3: [sets.s] databases: in a postgresql set, databases lists database names or "all", not tables',
        ),
        (
            'sources = ["/x"]\ndatabases = ["app"]\n',
            "/etc/sv.toml:3: [sets.s] databases: in a files set, databases are tables naming a server",
        ),
        (
            'sources = ["/x"]\ndatabases = [{ type = "oracle" }]\n',
            '/etc/sv.toml:3: [sets.s] databases = [{ type = "oracle" }] entry 1: type must be one of postgresql, mariadb',
        ),
        (
            'sources = ["/x"]\ndatabases = [{ type = "mariadb", pasword = "x" }]\n',
            "entry 1 has unknown key 'pasword'",
        ),
        (
            'sources = ["/x"]\ndatabases = [{ databases = ["a"] }]\n',
            "entry 1 needs type = 'postgresql' or 'mariadb'",
        ),
        (
            'type = "postgresql"\ndatabases = ["a"]\nport = 70000\n',
            "/etc/sv.toml:4: [sets.s] port = 70000 is out of range: allowed 0–65535",
        ),
        ('type = "postgresql"\ndatabases = ["a"]\nsources = ["/x"]\n', "a postgresql set has no sources"),
    ],
)
def test_bad_database_settings_are_one_line_with_file_and_line(body: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load("[sets.s]\n" + body)
    assert message in str(err.value)
    assert len(str(err.value).splitlines()) == 1


def test_no_password_key_exists_only_password_file() -> None:
    with pytest.raises(ConfigError) as err:
        load('[sets.s]\ntype = "postgresql"\ndatabases = ["a"]\npassword = "hunter2"\n')
    assert "unknown key 'password'" in str(err.value) and "password_file" in str(err.value)
