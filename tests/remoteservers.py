"""The servers the remote-repository tests talk to, started through .ci/services/NAME.sh.

When .ci/run has started a service, its ``export`` variables are in the environment and are used
as they are; otherwise a session fixture runs the same script into a temporary directory and
stops it at the end, so a developer needs nothing running beforehand.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _parse_exports(text: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("export "):
            name, _, value = line[len("export ") :].partition("=")
            found[name] = shlex.split(value)[0] if value else ""
    return found


def _service(name: str, marker: str) -> Iterator[dict[str, str]]:
    if os.environ.get(marker):
        yield dict(os.environ)
        return
    script = ROOT / ".ci" / "services" / f"{name}.sh"
    with tempfile.TemporaryDirectory(prefix=f"sv-{name}-") as d:
        p = subprocess.run(["bash", str(script), "start", d], capture_output=True, text=True, timeout=300)
        if p.returncode != 0:
            subprocess.run(["bash", str(script), "stop", d], capture_output=True, timeout=60)
            raise RuntimeError(f"{script} start failed:\n{p.stdout}\n{p.stderr}")
        try:
            yield dict(os.environ, **_parse_exports(p.stdout))
        finally:
            subprocess.run(["bash", str(script), "stop", d], capture_output=True, timeout=60)


@pytest.fixture(scope="session")
def rest_env() -> Iterator[dict[str, str]]:
    """Variables of the REST server (SHADOWVAULT_TEST_REST_URL, _USER, _PASS)."""
    yield from _service("rest", "SHADOWVAULT_TEST_REST_URL")


@pytest.fixture(scope="session")
def s3_env() -> Iterator[dict[str, str]]:
    """Variables of the S3 server (SHADOWVAULT_TEST_S3_ENDPOINT and AWS credentials)."""
    yield from _service("s3", "SHADOWVAULT_TEST_S3_ENDPOINT")


@pytest.fixture(scope="session")
def sshd_env() -> Iterator[dict[str, str]]:
    """Variables of the SSH server (SHADOWVAULT_TEST_SSH_HOST, SHADOWVAULT_SSH_CONFIG, ...)."""
    yield from _service("sshd", "SHADOWVAULT_TEST_SSH_HOST")
