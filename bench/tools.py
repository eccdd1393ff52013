"""The two programs under test, as command lines plus the checks on their JSON output.

Both get the same password through their environment variables, their own fresh repository, and an
environment that keeps them away from the user's real configuration: shadowvault's config, data and
state directories (platformdirs honours ``XDG_*``) and restic's cache (``RESTIC_CACHE_DIR``) all live
under the benchmark's work directory. restic otherwise runs with its defaults (cache on, compression
``auto``, repository format 2).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PASSWORD", "Tool", "last_json", "restic_tool", "shadowvault_tool", "tool_env"]

PASSWORD = "bench-password-not-secret"
# Variables that would point either tool at another repository, config or password.
_SRC = Path(__file__).resolve().parent.parent / "src"
_SCRUB = (
    # An installed program has its bytecode cached; a session that disables .pyc writing would
    # make every shadowvault start compile its modules again (~0.5 s), which no user pays.
    "PYTHONDONTWRITEBYTECODE",
    "SHADOWVAULT_REPOSITORY",
    "SHADOWVAULT_CONFIG",
    "SHADOWVAULT_PASSWORD",
    "RESTIC_REPOSITORY",
    "RESTIC_REPOSITORY_FILE",
    "RESTIC_PASSWORD",
    "RESTIC_PASSWORD_FILE",
    "RESTIC_PASSWORD_COMMAND",
    "RESTIC_COMPRESSION",
    "RESTIC_PACK_SIZE",
    "RESTIC_CACHE_DIR",
    "GOMAXPROCS",
)


def tool_env(workdir: Path) -> dict[str, str]:
    """Environment shared by both tools: passwords, private config/state/cache directories."""
    env = {k: v for k, v in os.environ.items() if k not in _SCRUB}
    # shadowvault from this checkout, whatever an editable install points at (a CI clone re-points
    # it): the report names this checkout's commit, so that is the code it must measure.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_SRC), env.get("PYTHONPATH", "")]))
    env.update(
        SHADOWVAULT_PASSWORD=PASSWORD,
        RESTIC_PASSWORD=PASSWORD,
        RESTIC_CACHE_DIR=str(workdir / "restic-cache"),
        XDG_CONFIG_HOME=str(workdir / "xdg" / "config"),
        XDG_DATA_HOME=str(workdir / "xdg" / "data"),
        XDG_STATE_HOME=str(workdir / "xdg" / "state"),
        XDG_CACHE_HOME=str(workdir / "xdg" / "cache"),
    )
    return env


def last_json(stdout: str, message_type: str) -> dict[str, object] | None:
    """The last JSON line of ``stdout`` whose ``message_type`` matches (both tools use that key)."""
    found: dict[str, object] | None = None
    for line in stdout.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict) and obj.get("message_type") == message_type:
            found = obj
    return found


@dataclass(frozen=True)
class Tool:
    """Command lines of one backup program for the benchmark's steps."""

    name: str
    base: tuple[str, ...]
    version: str

    def init(self, repo: Path) -> list[str]:
        """Create ``repo`` (not timed)."""
        if self.name == "restic":
            return [*self.base, "--repo", str(repo), "init"]
        return [*self.base, "init", "--repo", str(repo)]

    def backup(self, repo: Path, source: Path, extra: tuple[str, ...] = ()) -> list[str]:
        """Back ``source`` up into ``repo`` with JSON output."""
        if self.name == "restic":
            return [*self.base, "--repo", str(repo), "backup", "--json", *extra, str(source)]
        return [*self.base, "backup", "--repo", str(repo), "--json", *extra, str(source)]

    def restore(self, repo: Path, target: Path) -> list[str]:
        """Restore the latest snapshot of ``repo`` into the empty directory ``target``."""
        if self.name == "restic":
            return [*self.base, "--repo", str(repo), "restore", "latest", "--target", str(target)]
        return [*self.base, "restore", "--repo", str(repo), "--json", "latest", "--target", str(target)]

    def check_backup(self, stdout: str, n_files: int, first: bool) -> list[str]:
        """Problems with a backup's JSON summary: wrong file counts, or content read when nothing changed."""
        summary = last_json(stdout, "summary")
        if summary is None:
            return [f"{self.name}: no JSON summary"]
        problems: list[str] = []
        if self.name == "restic":
            done = int(str(summary.get("total_files_processed", -1)))
            unchanged = int(str(summary.get("files_unmodified", -1)))
        else:
            done = int(str(summary.get("files_ok", -1)))
            unchanged = int(str(summary.get("files_unchanged", -1)))
            if not first and int(str(summary.get("files_read", -1))) != 0:
                problems.append(f"shadowvault: no-change backup read {summary.get('files_read')} files")
        if done != n_files:
            problems.append(f"{self.name}: {done} files backed up, expected {n_files}")
        if not first and unchanged != n_files:
            problems.append(f"{self.name}: {unchanged} files unchanged, expected {n_files}")
        return problems


def restic_tool() -> Tool:
    """Debian's restic on PATH."""
    exe = shutil.which("restic")
    if exe is None:
        raise SystemExit("restic is not on PATH")
    version = subprocess.run([exe, "version"], capture_output=True, text=True, check=True).stdout.strip()
    return Tool("restic", (exe,), version)


def shadowvault_tool(env: Mapping[str, str]) -> Tool:
    """shadowvault as ``python -m shadowvault`` with this interpreter, from this checkout's ``src``
    (``env`` from :func:`tool_env`)."""
    base = (sys.executable, "-m", "shadowvault")
    proc = subprocess.run([*base, "--version"], capture_output=True, text=True, env=dict(env))
    if proc.returncode != 0:
        raise SystemExit(f"shadowvault does not run: {proc.stderr.strip()}")
    return Tool("shadowvault", base, proc.stdout.strip())
