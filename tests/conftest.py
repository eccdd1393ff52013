"""Shared test fixtures and the skip rule for privileged tests.

Tests that need root, loop devices or external binaries may skip only when the
``CI`` environment variable is unset; in CI a missing capability is a failure.
"""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest


def pytest_configure(config: pytest.Config) -> None:
    """The CLI's caches (e.g. the remembered key parameters of remote repositories) go to a
    directory of this run, never the caches of the user running the tests."""
    if "SHADOWVAULT_TEST_CACHE" not in os.environ:
        path = tempfile.mkdtemp(prefix="shadowvault-test-cache-")
        os.chmod(path, 0o1777)  # like /tmp: tests that drop root to another user share it
        os.environ["SHADOWVAULT_TEST_CACHE"] = os.environ["XDG_CACHE_HOME"] = path
        config.add_cleanup(lambda: shutil.rmtree(path, ignore_errors=True))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``slow`` run in CI and when asked for (``-m slow``); other local runs stay short."""
    if os.environ.get("CI") or "slow" in (config.getoption("markexpr", "") or ""):
        return
    kept = [item for item in items if item.get_closest_marker("slow") is None]
    if len(kept) != len(items):
        config.hook.pytest_deselected(items=[i for i in items if i.get_closest_marker("slow") is not None])
        items[:] = kept


def require(condition: bool, why: str) -> None:
    """Skip (outside CI) or fail (in CI) when ``condition`` is false."""
    if condition:
        return
    if os.environ.get("CI"):
        pytest.fail(f"CI must provide this: {why}")
    pytest.skip(why)


def require_root() -> None:
    """The test needs to run as root (leases on others' files, mounts, chown)."""
    require(os.geteuid() == 0, "needs root")


def require_binary(name: str) -> str:
    """The test needs an external program on PATH; returns its path."""
    path = shutil.which(name)
    require(path is not None, f"needs the {name!r} program on PATH")
    assert path is not None
    return path


# Session fixtures of the database servers the hot-backup tests use (tests/dbservers.py).
from dbservers import mariadb_server, pg16_server, pg_server  # noqa: E402, F401

# Session fixtures of the servers the remote-repository tests use (tests/remoteservers.py). A
# conftest.py of their own would shadow this one as the module "conftest" once collected.
from remoteservers import rest_env, s3_env, sshd_env  # noqa: E402, F401
