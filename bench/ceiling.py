"""What this machine can do at best for each step, measured like the tools (issue 10).

Each step has a reference made of standard tools that does the unavoidable part of that step and
nothing else, run on the same dataset with the same page-cache handling as the tools:

* first backup: ``tar -cf - . | zstd -1 -T0 > /dev/null`` reads every file and compresses the
  stream on every core (no hashing, no encryption, nothing written: a floor for any backup tool);
* no-change backup: ``find . -printf '%s %T@ %i\\n' > /dev/null``, one ``lstat`` per entry, the
  least an incremental backup must do to see that nothing changed;
* full restore: ``cp -a SOURCE TARGET`` creates every file with its metadata from the source read
  cold (a restore reads a repository instead, but writes the same tree).

The figures say how far each tool is from the machine, not which tool wins: the ratio a tool has to
its ceiling is what is left to gain.
"""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path

from measure import CacheMode, Measurement, prepare_caches, run_measured

__all__ = ["CEILING_COMMANDS", "measure_ceilings"]

CEILING_COMMANDS = {
    "first backup": "tar -cf - . | zstd -1 -T0 -q > /dev/null",
    "no-change backup": "find . -printf '%s %T@ %i\\n' > /dev/null",
    "full restore": "cp -a {source} {target}",
}


def measure_ceilings(
    source: Path, workdir: Path, env: dict[str, str], cache: CacheMode
) -> dict[str, Measurement]:
    """Time every reference command once (in ``source``'s directory); raise when one fails."""
    missing = [tool for tool in ("tar", "zstd", "find", "cp") if shutil.which(tool) is None]
    if missing:
        raise SystemExit(f"--ceilings needs {', '.join(missing)} on PATH")
    out: dict[str, Measurement] = {}
    target = workdir / "ceiling-restore"
    for step, template in CEILING_COMMANDS.items():
        if target.exists():
            shutil.rmtree(target)
        cmd = template.format(source=shlex.quote(str(source)), target=shlex.quote(str(target)))
        prepare_caches(cache)
        name = f"ceiling-{step.replace(' ', '-')}"
        m = run_measured(["sh", "-c", cmd], env, workdir / "logs", name, cwd=source)
        if m.returncode != 0:
            raise SystemExit(f"ceiling of {step} failed ({cmd}):\n{m.stderr_tail()}")
        out[step] = m
    if target.exists():
        shutil.rmtree(target)
    return out
