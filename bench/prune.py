#!/usr/bin/env python3
"""The prune line: `shadowvault prune` vs `restic prune` on copies of one repository.

Usage: ``python3 bench/prune.py [--size-gib 1] [--snapshots 20] [--workdir DIR] [--json]``.
A working copy of the benchmark dataset is backed up ``--snapshots`` times by shadowvault, with
changes between the backups (5 % of the small files rewritten, a few deleted and added, a 4 MiB
region of one big file overwritten); `restic forget --keep-last N/2` forgets the older half; the
repository is copied twice and each tool prunes its own copy with the same settings (default
``--max-unused 5%``). Wall time, CPU time and peak RSS of each prune are measured like the other
steps (bench/measure.py). Both pruned copies must pass `restic check --read-data` and keep the
same snapshots, else the run fails (exit 1).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import shutil
import sys
from pathlib import Path

from dataset import ensure_dataset, spec_for_size
from measure import Measurement, claim_workdir, run_measured
from tools import restic_tool, shadowvault_tool, tool_env

HERE = Path(__file__).resolve().parent


def _du(path: Path) -> int:
    return sum(os.lstat(os.path.join(d, f)).st_size for d, _dirs, files in os.walk(path) for f in files)


def mutate(root: Path, generation: int, seed: int) -> None:
    """Deterministic changes between two backups."""
    rng = random.Random(seed * 1000 + generation)
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.name != "MANIFEST.json")
    small = [p for p in files if p.stat().st_size <= 64 * 1024]
    big = [p for p in files if p.stat().st_size > 64 * 1024]
    for p in rng.sample(small, max(1, len(small) // 20)):
        p.write_bytes(rng.randbytes(p.stat().st_size))
    for p in rng.sample(small, max(1, len(small) // 200)):
        if p.exists():
            p.unlink()
    for i in range(max(1, len(small) // 200)):
        (root / f"added-{generation}-{i}.bin").write_bytes(rng.randbytes(rng.randrange(1024, 65536)))
    if big:
        victim = rng.choice(big)
        size = victim.stat().st_size
        with open(victim, "r+b") as f:
            f.seek(rng.randrange(0, max(1, size - 4 * 1024 * 1024)))
            f.write(rng.randbytes(min(size, 4 * 1024 * 1024)))


def main(argv: list[str] | None = None) -> int:
    """Build the repository, forget half, prune a copy with each tool; exit 1 when a check fails."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--size-gib", type=float, default=1.0)
    p.add_argument("--snapshots", type=int, default=20)
    p.add_argument("--workdir", type=Path, default=HERE / "work-prune")
    p.add_argument("--data-dir", type=Path, default=HERE / "data")
    p.add_argument("--seed", type=int, default=20261125)
    p.add_argument("--max-unused", default="5%")
    p.add_argument("--json", action="store_true")
    p.add_argument("--keep", action="store_true")
    args = p.parse_args(argv)

    def say(msg: str) -> None:
        print(f"[{dt.datetime.now(dt.UTC):%H:%M:%S}] {msg}", file=sys.stderr, flush=True)

    spec = spec_for_size(args.size_gib, args.seed)
    dataset = (args.data_dir / f"dataset-{spec.digest()}").resolve()
    claim_workdir(args.workdir.resolve())
    work = args.workdir.resolve()
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    ensure_dataset(dataset, spec)
    env = tool_env(work)
    sv, restic = shadowvault_tool(env), restic_tool()
    logs = work / "logs"
    source, base = work / "source", work / "repo"
    shutil.copytree(dataset, source)
    problems: list[str] = []

    def must(argv: list[str], name: str) -> Measurement:
        m = run_measured(argv, env, logs, name)
        if m.returncode != 0:
            problems.append(f"{name}: exit {m.returncode}\n{m.stderr_tail()}")
        return m

    must(sv.init(base), "init")
    say(f"{args.snapshots} backups with changes between them")
    for g in range(args.snapshots):
        if g:
            mutate(source, g, args.seed)
        must(sv.backup(base, source), f"backup-{g}")
    keep = args.snapshots - args.snapshots // 2
    must([*restic.base, "--repo", str(base), "forget", "--keep-last", str(keep)], "forget")
    before = _du(base)
    results: dict[str, dict[str, object]] = {}
    for i, tool in enumerate([sv, restic] if args.seed % 2 == 0 else [restic, sv]):
        repo = work / f"repo-{tool.name}"
        shutil.copytree(base, repo)
        os.sync()
        if tool.name == "restic":
            argv = [*tool.base, "--repo", str(repo), "prune", "--max-unused", args.max_unused]
        else:
            argv = [*tool.base, "prune", "--repo", str(repo), "--max-unused", args.max_unused]
        say(f"{tool.name} prune")
        m = must(argv, f"prune-{tool.name}-{i}")
        must([*restic.base, "--repo", str(repo), "check", "--read-data"], f"check-{tool.name}")
        listing = run_measured(
            [*restic.base, "--repo", str(repo), "snapshots", "--json"], env, logs, f"snaps-{tool.name}"
        )
        results[tool.name] = {
            "wall_s": round(m.wall_s, 2),
            "cpu_s": round(m.cpu_s, 2),
            "peak_rss_mib": round(m.peak_rss_kib / 1024, 1),
            "repo_bytes_after": _du(repo),
            "snapshots": sorted(s["id"] for s in json.loads(listing.stdout() or "[]")),
            "load": [m.load_before, m.load_after],
        }
    if results["shadowvault"]["snapshots"] != results["restic"]["snapshots"]:
        problems.append("the pruned repositories hold different snapshots")
    doc = {"repo_bytes_before": before, "results": results, "problems": problems}
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        s, r = results["shadowvault"], results["restic"]
        ratio = float(str(s["wall_s"])) / max(float(str(r["wall_s"])), 1e-9)
        head = "| step | shadowvault s | restic s | ratio | sv CPU s | restic CPU s"
        print(head + " | sv peak RSS MiB | restic peak RSS MiB |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        print(
            f"| prune | {s['wall_s']} | {r['wall_s']} | {ratio:.2f} | {s['cpu_s']} | {r['cpu_s']} | "
            f"{s['peak_rss_mib']} | {r['peak_rss_mib']} |"
        )
        after = f"shadowvault {s['repo_bytes_after']}, restic {r['repo_bytes_after']}"
        print(f"repository {before} bytes before; after: {after}")
        for prob in problems:
            print(f"PROBLEM: {prob}")
    if not args.keep:
        shutil.rmtree(work)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
