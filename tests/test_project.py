"""Project-level checks: lint, types, layering, and the README's commands matching CI."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    # import-linter imports the package: make that this checkout's code, not whichever copy of
    # shadowvault is installed (an editable install of another checkout would be checked instead).
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")])),
    }
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)


def test_ruff_is_clean() -> None:
    p = _run(sys.executable, "-m", "ruff", "check", "src", "tests")
    assert p.returncode == 0, p.stdout + p.stderr


def test_mypy_strict_is_clean() -> None:
    p = _run(sys.executable, "-m", "mypy")
    assert p.returncode == 0, p.stdout + p.stderr


def test_layering_contracts_hold() -> None:
    exe = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    p = _run(exe)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "broken" not in p.stdout.lower().replace("0 broken", "")


def test_readme_starts_with_the_install_and_test_commands_ci_runs() -> None:
    readme = (ROOT / "README.md").read_text().splitlines()
    commands = [line.strip() for line in readme[:12] if line.startswith("    ")]
    assert commands[0].startswith("pip install . && ") and "shadowvault backup" in commands[0]
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()
    assert commands[1] == ci[-1], "README's test command and .ci/run's differ"


def test_public_api_exports_resolve() -> None:
    import shadowvault

    for name in shadowvault.__all__:
        assert hasattr(shadowvault, name), name
