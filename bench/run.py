#!/usr/bin/env python3
"""shadowvault vs restic on one deterministic dataset: first backup, no-change backup, full restore.

Usage: ``python3 bench/run.py [--size-gib 1] [--workdir DIR] [--json]``. See bench/README.md for what
is measured and how to read the table. Every step is checked (file counts from the tools' JSON
summaries, the restored trees against the source), and a failed check fails the run (exit 1), so a
fast but wrong result can never be reported as a win.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ceiling import CEILING_COMMANDS, measure_ceilings
from dataset import PROFILES, ensure_dataset, remove_tree, spec_for_profile, walk_files
from measure import (
    CacheMode,
    Measurement,
    can_drop_caches,
    claim_workdir,
    prepare_caches,
    run_measured,
    warm_tree,
)
from tools import Tool, restic_tool, shadowvault_tool, tool_env
from verify import SourceHashes, restored_root, verify_restore

HERE = Path(__file__).resolve().parent
STEPS = ("first backup", "no-change backup", "full restore")
OVERHEAD_TARGET_PCT = 5.0


@dataclass
class Run:
    """State of one benchmark run and everything it has found so far."""

    workdir: Path
    source: Path
    n_files: int
    cache: CacheMode
    env: dict[str, str]
    problems: list[str] = field(default_factory=list)
    steps: dict[str, dict[str, list[Measurement]]] = field(default_factory=dict)
    ceilings: dict[str, Measurement] = field(default_factory=dict)

    def measure(self, tool: Tool, step: str, argv: list[str]) -> Measurement:
        """Time one step of one tool after bringing the cache to the agreed state."""
        prepare_caches(self.cache)
        name = f"{tool.name}-{step.replace(' ', '-')}"
        m = run_measured(argv, self.env, self.workdir / "logs", name)
        if m.returncode != 0:
            self.problems.append(f"{tool.name} {step}: exit {m.returncode}\n{m.stderr_tail()}")
        return m


def _fresh(path: Path) -> Path:
    if path.exists():
        remove_tree(path)
    return path


def _init(run: Run, tool: Tool, repo: Path) -> None:
    m = run_measured(tool.init(_fresh(repo)), run.env, run.workdir / "logs", f"{tool.name}-init-{repo.name}")
    if m.returncode != 0:
        raise SystemExit(f"{tool.name} init failed:\n{m.stderr_tail()}")


def _du(path: Path) -> int:
    return sum(os.lstat(os.path.join(d, f)).st_size for d, files in walk_files(path) for f in files)


def main_steps(run: Run, tools: list[Tool], hashes: SourceHashes, repeats: int) -> dict[str, object]:
    """The three side-by-side steps, ``repeats`` times from fresh repositories.

    The tool that goes first alternates from step to step and from round to round, so neither
    always runs right after the other's writes.
    """
    extra: dict[str, object] = {}
    repos = {t.name: run.workdir / f"repo-{t.name}" for t in tools}
    for r in range(repeats):
        for t in tools:
            _init(run, t, repos[t.name])
        for i, step in enumerate(STEPS):
            order = tools if (i + r) % 2 == 0 else list(reversed(tools))
            for t in order:
                m = _one_step(run, t, step, repos[t.name], hashes, extra, first_round=r == 0)
                run.steps.setdefault(step, {}).setdefault(t.name, []).append(m)
        if r == 0:
            # The independent verifier: restic must accept what shadowvault wrote.
            restic = next(t for t in tools if t.name == "restic")
            argv = [*restic.base, "--repo", str(repos["shadowvault"]), "check"]
            chk = run_measured(argv, run.env, run.workdir / "logs", "check")
            extra["restic_check_of_shadowvault_repo"] = "ok" if chk.returncode == 0 else chk.stderr_tail()
            if chk.returncode != 0:
                run.problems.append(f"restic check of shadowvault's repository failed:\n{chk.stderr_tail()}")
        for repo in repos.values():
            remove_tree(repo)
    return extra


def _one_step(
    run: Run,
    t: Tool,
    step: str,
    repo: Path,
    hashes: SourceHashes,
    extra: dict[str, object],
    first_round: bool,
) -> Measurement:
    if step == "full restore":
        # Restored trees stay until the run ends: ext4 (this machine's, without a journal) scans past
        # recently freed inodes on every file creation, so removing one tool's tree right before the
        # other tool restores made whoever restored second pay for it (bench/README, 2026-11-30).
        rounds = len(run.steps.get(step, {}).get(t.name, []))
        target = _fresh(run.workdir / f"restore-{t.name}-{rounds}")
        m = run.measure(t, step, t.restore(repo, target))
        verdict = verify_restore(restored_root(target, run.source), hashes)
        if first_round:
            extra[f"verify_{t.name}"] = verdict.to_json()
        run.problems.extend(f"{t.name} restore: {p}" for p in verdict.problems[:20])
        return m
    first = step == "first backup"
    m = run.measure(t, step, t.backup(repo, run.source))
    run.problems.extend(t.check_backup(m.stdout(), run.n_files, first=first))
    if first and first_round:
        extra[f"repo_bytes_{t.name}"] = _du(repo)
    return m


def overhead(run: Run, sv: Tool, pairs: int) -> dict[str, object]:
    """First backups into fresh repos with the default strategy and with allow-write, alternating.

    Reported on wall time and on CPU time (user + system): on a shared machine the CPU figure is
    the steadier of the two, since waiting for a core does not count.
    """
    runs: dict[str, list[Measurement]] = {"try-deny-write": [], "allow-write": []}
    for i in range(pairs):
        order = ["try-deny-write", "allow-write"] if i % 2 == 0 else ["allow-write", "try-deny-write"]
        for mode in order:
            repo = run.workdir / f"repo-overhead-{mode}"
            _init(run, sv, repo)
            extra = () if mode == "try-deny-write" else ("--open-files", "allow-write")
            m = run.measure(sv, f"overhead {mode} {i}", sv.backup(repo, run.source, extra))
            run.problems.extend(sv.check_backup(m.stdout(), run.n_files, first=True))
            runs[mode].append(m)
            remove_tree(repo)
    wall = {k: statistics.median(m.wall_s for m in v) for k, v in runs.items()}
    cpu = {k: statistics.median(m.cpu_s for m in v) for k, v in runs.items()}
    return {
        "default_s": wall["try-deny-write"],
        "allow_write_s": wall["allow-write"],
        "overhead_pct": (wall["try-deny-write"] / wall["allow-write"] - 1.0) * 100.0,
        "default_cpu_s": cpu["try-deny-write"],
        "allow_write_cpu_s": cpu["allow-write"],
        "cpu_overhead_pct": (cpu["try-deny-write"] / cpu["allow-write"] - 1.0) * 100.0,
        "runs": {k: [round(m.wall_s, 3) for m in v] for k, v in runs.items()},
        "cpu_runs": {k: [round(m.cpu_s, 3) for m in v] for k, v in runs.items()},
        "peak_rss_kib": {k: max(m.peak_rss_kib for m in v) for k, v in runs.items()},
        "target_pct": OVERHEAD_TARGET_PCT,
    }


def _git_head() -> str:
    """Commit of the checkout the benchmark lives in (``+dirty`` with uncommitted changes under src/)."""
    git = ["git", "-C", str(HERE.parent)]
    try:
        head = subprocess.run(
            [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        )
        dirty = subprocess.run([*git, "status", "--porcelain", "--", "src"], capture_output=True, text=True)
    except OSError:
        return "unknown"
    if head.returncode != 0:
        return "unknown"
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def _median(ms: list[Measurement]) -> Measurement:
    """The run with the median wall time (the lower middle one for an even count)."""
    return sorted(ms, key=lambda m: m.wall_s)[(len(ms) - 1) // 2]


def _mib(kib: int) -> str:
    return f"{kib / 1024:.0f}"


def report_json(run: Run, meta: dict[str, object], extra: dict[str, object]) -> dict[str, object]:
    """The whole result as one JSON-able document."""
    steps = []
    for step, by_tool in run.steps.items():
        row: dict[str, object] = {"step": step}
        medians: dict[str, Measurement] = {}
        for name, ms in by_tool.items():
            m = medians[name] = _median(ms)
            row[name] = {
                "wall_s": round(m.wall_s, 3),
                "cpu_s": round(m.cpu_s, 3),
                "user_s": round(m.user_s, 3),
                "sys_s": round(m.sys_s, 3),
                "peak_rss_kib": m.peak_rss_kib,
                "load_before": m.load_before,
                "load_after": m.load_after,
                "exit": m.returncode,
                "all_wall_s": [round(x.wall_s, 3) for x in ms],
            }
        row["ratio"] = round(medians["shadowvault"].wall_s / medians["restic"].wall_s, 3)
        c = run.ceilings.get(step)
        if c is not None:
            row["ceiling"] = {
                "command": CEILING_COMMANDS[step],
                "wall_s": round(c.wall_s, 3),
                "cpu_s": round(c.cpu_s, 3),
                # No peak RSS: ``sh`` is forked from this (large) process, and a forked child's RSS
                # counts the parent's pages until it executes, so it would read this script's size.
                "shadowvault_ratio": round(medians["shadowvault"].wall_s / c.wall_s, 2),
                "restic_ratio": round(medians["restic"].wall_s / c.wall_s, 2),
            }
        steps.append(row)
    return {**meta, "steps": steps, **extra, "problems": run.problems, "ok": not run.problems}


def report_table(doc: dict[str, object]) -> str:
    """Human-readable table of :func:`report_json`'s document."""
    lines = [
        f"{doc['shadowvault_version']} (commit {doc.get('shadowvault_commit')}) vs {doc['restic_version']}",
        f"dataset: {doc['files']} files, {int(str(doc['bytes'])) / 2**30:.2f} GiB at {doc['source']}; "
        f"cache: {doc['cache']}; {doc['cpus']} CPUs; load(1m) at start {doc['load_start']:.2f}",
        "",
        f"{'step':<18}{'sv s':>9}{'restic s':>10}{'ratio':>7}{'sv CPU s':>10}{'restic CPU s':>13}"
        f"{'sv RSS MiB':>12}{'restic RSS MiB':>16}",
    ]
    steps = doc["steps"]
    assert isinstance(steps, list)
    for row in steps:
        sv, rs = row["shadowvault"], row["restic"]
        lines.append(
            f"{row['step']:<18}{sv['wall_s']:>9.2f}{rs['wall_s']:>10.2f}{row['ratio']:>7.2f}"
            f"{sv['cpu_s']:>10.2f}{rs['cpu_s']:>13.2f}"
            f"{_mib(sv['peak_rss_kib']):>12}{_mib(rs['peak_rss_kib']):>16}"
        )
    if any("ceiling" in row for row in steps):
        lines.append("")
        lines.append("ceiling of this machine (bench/ceiling.py), and each tool's time as a multiple of it:")
        for row in steps:
            c = row.get("ceiling")
            if c:
                lines.append(
                    f"  {row['step']:<18}{c['wall_s']:>7.2f} s  (CPU {c['cpu_s']:.2f} s)  shadowvault "
                    f"{c['shadowvault_ratio']:.2f}x, restic {c['restic_ratio']:.2f}x   {c['command']}"
                )
    ov = doc.get("open_files_overhead")
    if isinstance(ov, dict):
        lines.append("")
        lines.append(
            f"open-file checks: default (try-deny-write) {ov['default_s']:.2f} s vs allow-write "
            f"{ov['allow_write_s']:.2f} s: {ov['overhead_pct']:+.1f}% (target <= {ov['target_pct']:.0f}%); "
            f"CPU {ov['default_cpu_s']:.2f} s vs {ov['allow_write_cpu_s']:.2f} s: "
            f"{ov['cpu_overhead_pct']:+.1f}%; median of {len(ov['runs']['allow-write'])} run(s) each"
        )
    lines.append("")
    sv_mib = int(str(doc["repo_bytes_shadowvault"])) / 2**20
    restic_mib = int(str(doc["repo_bytes_restic"])) / 2**20
    lines.append(
        f"repository size after first backup: shadowvault {sv_mib:.0f} MiB, restic {restic_mib:.0f} MiB; "
        f"restic check of shadowvault's repository: {doc['restic_check_of_shadowvault_repo']}"
    )
    problems = doc["problems"]
    assert isinstance(problems, list)
    lines.append("verification: OK" if not problems else "PROBLEMS:\n  " + "\n  ".join(problems))
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command line of the benchmark."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument(
        "--profile",
        choices=PROFILES,
        default="standard",
        help="dataset: standard (small and big files), small-files (200,000 files of 0-2 KiB), deep-tree",
    )
    p.add_argument(
        "--size-gib",
        type=float,
        default=1.0,
        help="dataset scale (default 1: ~1 GiB standard, 200,000 files small-files)",
    )
    p.add_argument("--workdir", type=Path, default=HERE / "work", help="repositories, restores, logs")
    p.add_argument("--data-dir", type=Path, default=HERE / "data", help="where datasets are generated")
    p.add_argument("--seed", type=int, default=20261125, help="dataset seed")
    p.add_argument(
        "--cache",
        choices=["auto", "drop", "warm"],
        default="auto",
        help="drop: empty the page cache before every step (root); warm: read the dataset once and "
        "keep caches; auto: drop when allowed, else warm",
    )
    p.add_argument("--repeat", type=int, default=1, help="rounds of the three steps; medians are reported")
    p.add_argument("--overhead-pairs", type=int, default=3, help="default/allow-write backup pairs (0: skip)")
    p.add_argument(
        "--ceilings",
        action="store_true",
        help="also time this machine's ceiling of each step (tar | zstd, find, cp -a; bench/ceiling.py)",
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON instead of a table")
    p.add_argument("--keep", action="store_true", help="keep the work directory afterwards")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; exit status 1 when any correctness check failed."""
    args = parse_args(argv)
    spec = spec_for_profile(args.profile, args.size_gib, args.seed)
    source = (args.data_dir / f"dataset-{spec.digest()}").resolve()
    claim_workdir(args.workdir.resolve())
    workdir = _fresh(args.workdir.resolve())
    workdir.mkdir(parents=True)

    def say(msg: str) -> None:
        print(f"[{dt.datetime.now(dt.UTC):%H:%M:%S}] {msg}", file=sys.stderr, flush=True)

    say(f"dataset {source} (spec {spec.digest()}, ~{spec.approx_bytes / 2**30:.2f} GiB)")
    manifest, made = ensure_dataset(source, spec)
    say(("generated" if made else "reused") + f" {len(manifest.files)} files, {manifest.total_bytes} bytes")
    auto: CacheMode = "drop" if can_drop_caches() else "warm"
    cache: CacheMode = auto if args.cache == "auto" else args.cache
    if cache == "drop" and not can_drop_caches():
        raise SystemExit("--cache drop needs root and a writable /proc/sys/vm/drop_caches")
    env = tool_env(workdir)
    tools = [shadowvault_tool(env), restic_tool()]
    if cache == "warm":
        warm_tree(source)
    # The manifest file is part of the tree both tools back up.
    run = Run(workdir=workdir, source=source, n_files=len(manifest.files) + 1, cache=cache, env=env)
    meta: dict[str, object] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "shadowvault_version": tools[0].version,
        "shadowvault_commit": _git_head(),
        "restic_version": tools[1].version,
        "source": str(source),
        "files": len(manifest.files),
        "bytes": manifest.total_bytes,
        "spec": spec.digest(),
        "profile": args.profile,
        "cache": cache,
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "kernel": platform.release(),
        "load_start": os.getloadavg()[0],
        "repeat": max(1, args.repeat),
    }
    hashes = SourceHashes(source, manifest)
    say("side-by-side steps")
    extra = main_steps(run, tools, hashes, max(1, args.repeat))
    if args.ceilings:
        say("ceilings (tar | zstd, find, cp -a)")
        run.ceilings = measure_ceilings(source, workdir, env, cache)
    if args.overhead_pairs > 0:
        say("open-file overhead (default vs allow-write)")
        extra["open_files_overhead"] = overhead(run, tools[0], args.overhead_pairs)
    meta["load_end"] = os.getloadavg()[0]
    doc = report_json(run, meta, extra)
    print(json.dumps(doc, indent=2) if args.json else report_table(doc))
    if not args.keep:
        remove_tree(workdir)
    return 0 if not run.problems else 1


if __name__ == "__main__":
    sys.exit(main())
