#!/usr/bin/env python3
"""Profile shadowvault's first backup, no-change backup and restore on the benchmark dataset.

Usage: ``python3 bench/hotspots.py [--profile standard|small-files] [--size-gib 1] [--gil]
[--subprocesses] [--top 25] [--py-spy PATH]``.

It samples every thread with py-spy (``pip install py-spy``; a sampling profiler that needs no change
to the program), because cProfile sees only the main thread while the blob and restore workers do the
hashing, compression and encryption. ``--gil`` keeps only samples of the thread holding the GIL, which
is what limits a Python program on two cores: a function high in that list serialises the workers.

For each step it prints the samples per thread group and two lists: *self* (the innermost Python
frame, i.e. where the time is spent, native calls included in their caller) and *inclusive* (frames
anywhere on the stack, generic frames filtered out). Raw collapsed stacks are kept in
``WORKDIR/*.raw`` for flame graphs.
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import subprocess
import sys
from pathlib import Path

from dataset import PROFILES, ensure_dataset, remove_tree, spec_for_profile
from measure import claim_workdir, prepare_caches, run_measured
from tools import shadowvault_tool, tool_env

HERE = Path(__file__).resolve().parent
# Frames that are on every stack and say nothing about cost (import machinery: its cost shows in "self").
_GENERIC = re.compile(
    r"^(Thread\.|_worker |_WorkItem\.run|_run_module_as_main|_run_code|<module> |main |.*\(<frozen importlib)"
)


def summarise(raw: Path, top: int) -> str:
    """Self and inclusive sample shares per (thread group, function) of a py-spy raw file."""
    self_n: collections.Counter[tuple[str, str]] = collections.Counter()
    incl_n: collections.Counter[tuple[str, str]] = collections.Counter()
    groups: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        # With --subprocesses a stack starts with its process and that process's parents
        # ("process PID:cmdline"): below the session, its forked reader or writer processes are
        # grouped as "child …" and the progress totals' counting process as "counter …".
        procs = 0
        child = ""
        while frames and frames[0].startswith("process "):
            procs += 1
            if procs > 1:
                child = "counter " if "shadowvault.fs.count" in frames[0] else "child "
            frames = frames[1:]
        if not frames:
            continue
        # "thread (123): blob_0" → "blob"; the unnamed startup thread becomes "startup".
        head = frames[0].split(": ", 1)[-1] if ": " in frames[0] else "startup"
        group = child + (re.sub(r"_\d+$", "", head) if not head.startswith("thread (") else "startup")
        groups[group] += n
        body = [re.sub(r":\d+\)", ")", f) for f in frames[1:]]
        if body:
            self_n[(group, body[-1])] += n
        for f in set(body):
            if not _GENERIC.match(f):
                incl_n[(group, f)] += n
    if not total:
        return "  (no samples)"
    out = ["  samples per thread group: " + ", ".join(f"{g} {n}" for g, n in groups.most_common())]
    out.append("  self:")
    out += [f"    {n / total * 100:5.1f}%  {g:<10} {f}" for (g, f), n in self_n.most_common(top)]
    out.append("  inclusive:")
    out += [f"    {n / total * 100:5.1f}%  {g:<10} {f}" for (g, f), n in incl_n.most_common(top)]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    """Generate/reuse the dataset, run the three steps under py-spy, print the summaries."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--profile", choices=PROFILES, default="standard", help="dataset shape (bench/run.py's)")
    p.add_argument("--size-gib", type=float, default=1.0, help="scale (small-files: 1 = 200,000 files)")
    p.add_argument("--data-dir", type=Path, default=HERE / "data")
    p.add_argument("--workdir", type=Path, default=HERE / "work-profile")
    p.add_argument("--py-spy", default=shutil.which("py-spy") or "py-spy", help="py-spy executable")
    p.add_argument("--rate", type=int, default=250, help="samples per second")
    p.add_argument("--gil", action="store_true", help="only samples of the thread holding the GIL")
    p.add_argument("--subprocesses", action="store_true", help="sample the reader and writer processes too")
    p.add_argument("--top", type=int, default=25)
    args = p.parse_args(argv)
    if shutil.which(args.py_spy) is None and not Path(args.py_spy).is_file():
        print("py-spy not found: pip install py-spy (or --py-spy PATH)", file=sys.stderr)
        return 2
    spec = spec_for_profile(args.profile, args.size_gib)
    source = (args.data_dir / f"dataset-{spec.digest()}").resolve()
    ensure_dataset(source, spec)
    work = args.workdir.resolve()
    claim_workdir(work)
    if work.exists():
        remove_tree(work)
    work.mkdir(parents=True)
    env = tool_env(work)
    sv = shadowvault_tool(env)
    repo = work / "repo"
    subprocess.run(sv.init(repo), env=env, check=True, capture_output=True)
    steps = [
        ("first-backup", sv.backup(repo, source)),
        ("no-change-backup", sv.backup(repo, source)),
        ("restore", sv.restore(repo, work / "restore")),
    ]
    spy = [args.py_spy, "record", "-r", str(args.rate), "-f", "raw", "--threads", *(["--gil"] * args.gil)]
    spy += ["--subprocesses"] * args.subprocesses
    for name, argv_ in steps:
        raw = work / f"{name}.raw"
        prepare_caches("warm")
        m = run_measured([*spy, "-o", str(raw), "--", *argv_], env, work / "logs", name)
        if m.returncode != 0:
            print(f"{name} failed:\n{m.stderr_tail()}", file=sys.stderr)
            return 1
        print(f"== {name}: {m.wall_s:.1f} s wall under the profiler ({'GIL holder' if args.gil else 'all'})")
        print(summarise(raw, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
