"""Helpers of the remote tests: fresh repository locations on the test servers, and running
shadowvault and restic against them with credentials only in the environment."""

from __future__ import annotations

import importlib.util
import os
import secrets
import subprocess
import sys
from pathlib import Path
from types import ModuleType

from treeutil import PASSWORD, SRC


def _root_conftest() -> ModuleType:
    # tests/remote has its own conftest.py (the server fixtures), which shadows the name
    # "conftest"; the CI skip rule lives in tests/conftest.py, loaded here under another name.
    spec = importlib.util.spec_from_file_location(
        "sv_tests_conftest", Path(__file__).parents[1] / "conftest.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


require_binary = _root_conftest().require_binary
require = _root_conftest().require


def rest_location(env: dict[str, str], *, with_credentials: bool) -> str:
    """A new repository path on the REST server."""
    url = env["SHADOWVAULT_TEST_REST_URL"]
    if with_credentials:
        url = url.replace(
            "://", f"://{env['SHADOWVAULT_TEST_REST_USER']}:{env['SHADOWVAULT_TEST_REST_PASS']}@"
        )
    return f"rest:{url}r{secrets.token_hex(6)}/"


def child_env(base: dict[str, str], location: str, **extra: str) -> dict[str, str]:
    """Environment for shadowvault and restic children: repository and password never in argv."""
    e = dict(base)
    e["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), e.get("PYTHONPATH", "")]))
    e.pop("SHADOWVAULT_CONFIG", None)
    e["SHADOWVAULT_PASSWORD"] = PASSWORD
    e["RESTIC_PASSWORD"] = PASSWORD
    e["SHADOWVAULT_REPOSITORY"] = location
    e["RESTIC_REPOSITORY"] = location
    e.update(extra)
    return e


def run_sv(
    env: dict[str, str], *args: str, check: bool = True, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """``python -m shadowvault ARGS`` with ``env``."""
    p = subprocess.run(
        [sys.executable, "-m", "shadowvault", *args], capture_output=True, text=True, env=env, timeout=timeout
    )
    if check and p.returncode != 0:
        raise AssertionError(f"shadowvault {' '.join(args)} exited {p.returncode}\n{p.stdout}\n{p.stderr}")
    return p


def run_restic(
    env: dict[str, str], *args: str, check: bool = True, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """The real restic with ``env`` (its cache off)."""
    p = subprocess.run(
        ["restic", "--no-cache", *args], capture_output=True, text=True, env=env, timeout=timeout
    )
    if check and p.returncode != 0:
        raise AssertionError(f"restic {' '.join(args)} exited {p.returncode}\n{p.stdout}\n{p.stderr}")
    return p


def make_source(root: Path) -> Path:
    """A small tree with a multi-pack file, a compressible file and many small files."""
    src = root / "src"
    (src / "many").mkdir(parents=True)
    (src / "big.bin").write_bytes(os.urandom(6 * 1024 * 1024 + 123))
    (src / "log.txt").write_bytes(b"a line of text that compresses\n" * 50_000)
    for i in range(60):
        (src / "many" / f"f{i:03}").write_bytes(os.urandom(i * 37 + 1))
    return src


def same_tree(a: Path, b: Path) -> None:
    """Every file under ``a`` is under ``b`` with the same bytes."""
    for p in a.rglob("*"):
        q = b / p.relative_to(a)
        if p.is_file():
            assert q.read_bytes() == p.read_bytes(), p
        elif p.is_dir():
            assert q.is_dir(), q
