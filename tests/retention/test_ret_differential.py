"""Differential test: `shadowvault forget --dry-run --json` keeps exactly what `restic forget` keeps.

Seeded random histories (year and ISO-week boundaries, DST changes in several zones, several
hosts, path sets and tags) and random policies. Each repository holds many groups so one pair
of forget runs decides many cases; ``SHADOWVAULT_FORGET_CASES`` sets how many (group, policy)
cases run (default 300) and ``SHADOWVAULT_FORGET_SEED`` the seed.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import re
import subprocess
import sys
import zoneinfo
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conftest import require_binary
from shadowvault.repo import LocalBackend, Repository, Snapshot, Tree
from treeutil import PASSWORD, SRC

FAST_KDF = (1024, 8, 1)
ZONES = ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "UTC", "Asia/Kolkata"]
GROUPS_PER_REPO = 25
REPOS = 4
# Boundaries worth crossing: year ends (ISO week 53 in 2020 and 2026), and the DST changes of
# the zones above (March/April and October/November).
ANCHORS = [(12, 27), (3, 26), (10, 26), (11, 1), (4, 3), (10, 1), (3, 8), (6, 15)]
SCALES = {  # gap range in minutes between snapshots of one history
    "hourly": (7, 5 * 60),
    "daily": (5 * 60, 3 * 1440),
    "weekly": (1440, 20 * 1440),
    "monthly": (10 * 1440, 70 * 1440),
}


@dataclass
class Case:
    zone: str
    histories: list[list[Snapshot]]


def restic_rules() -> str:
    out = subprocess.run(["restic", "version"], capture_output=True, text=True, check=True).stdout
    m = re.search(r"restic (\d+)\.(\d+)", out)
    assert m is not None, out
    return "0.14" if (int(m.group(1)), int(m.group(2))) < (0, 16) else "0.16"


def make_history(rng: random.Random, zone: zoneinfo.ZoneInfo, host: str, used: set[int]) -> list[Snapshot]:
    year = rng.choice([2019, 2020, 2021, 2023, 2024, 2025])
    month, day = rng.choice(ANCHORS)
    start = dt.datetime(year, month, day, rng.randrange(24), rng.randrange(60), tzinfo=zone)
    start -= dt.timedelta(days=rng.randrange(0, 10))
    lo, hi = SCALES[rng.choice(list(SCALES))]
    paths = rng.choice([["/srv"], ["/home", "/etc"], ["/var/lib/db"]])
    t = int(start.timestamp()) * 10**9 + rng.randrange(10**9)
    snaps = []
    for _ in range(rng.randrange(1, 40)):
        t += rng.randrange(lo, hi) * 60 * 10**9 + rng.randrange(60 * 10**9)
        while t in used:
            t += 1
        used.add(t)
        seconds = t // 10**9
        offset = dt.datetime.fromtimestamp(seconds, zone).utcoffset()
        assert offset is not None
        tags = sorted(rng.sample(["a", "b", "c"], rng.randrange(0, 3)))
        snaps.append(
            Snapshot(
                time=t,
                tree=b"",
                paths=list(paths),
                hostname=host,
                username="u",
                tags=tags,
                time_offset=int(offset.total_seconds()),
            )
        )
    return snaps


def make_policy(rng: random.Random) -> list[str]:
    flags: list[str] = []
    while not flags:
        for name in ("last", "hourly", "daily", "weekly", "monthly", "yearly"):
            if rng.random() < 0.3:
                flags += [f"--keep-{name}", str(rng.randrange(1, 8))]
        for name in ("", "-hourly", "-daily", "-weekly", "-monthly", "-yearly"):
            if rng.random() < 0.12:
                parts = [(rng.randrange(1, 3), "y"), (rng.randrange(1, 13), "m"), (rng.randrange(1, 40), "d")]
                parts.append((rng.randrange(1, 48), "h"))
                chosen = [f"{n}{u}" for n, u in parts if rng.random() < 0.4] or [f"{rng.randrange(1, 60)}d"]
                flags += [f"--keep-within{name}", "".join(chosen)]
        if rng.random() < 0.15:
            flags += ["--keep-tag", rng.choice(["a", "a,b", "c"])]
    flags += ["--group-by", rng.choice(["host,paths", "host,paths", "host", "host,paths,tags", "paths", ""])]
    return flags


def write_repo(path: Path, histories: list[list[Snapshot]]) -> None:
    repo = Repository.init(LocalBackend(path), PASSWORD, kdf=FAST_KDF)
    tree = repo.save_tree(Tree([]))
    repo.flush()
    snaps = [snap for history in histories for snap in history]
    for snap in snaps:
        snap.tree = tree
    # Each save ends in an fsync, which releases the GIL: threads overlap them.
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(repo.save_snapshot, snaps))
    repo.close()


def kept(groups: list[dict[str, Any]]) -> dict[tuple[Any, ...], tuple[list[str], list[str]]]:
    out = {}
    for g in groups:
        key = (g["host"], tuple(g["paths"] or ()), tuple(g["tags"] or ()))
        out[key] = (sorted(s["id"] for s in g["keep"] or []), sorted(s["id"] for s in g["remove"] or []))
    return out


def json_list(stdout: str) -> list[dict[str, Any]]:
    for line in stdout.splitlines():
        doc = json.loads(line)
        if isinstance(doc, list):
            return doc
    raise AssertionError(f"no JSON list of groups in: {stdout!r}")


def test_forget_decisions_match_restic(tmp_path: Path) -> None:
    require_binary("restic")
    cases = int(os.environ.get("SHADOWVAULT_FORGET_CASES", "300"))
    seed = int(os.environ.get("SHADOWVAULT_FORGET_SEED", "13"))
    rng = random.Random(seed)
    rules = restic_rules()
    policies_per_repo = max(1, -(-cases // (REPOS * GROUPS_PER_REPO)))
    compared = 0
    for r in range(REPOS):
        zone_name = ZONES[r % len(ZONES)] if r < len(ZONES) else rng.choice(ZONES)
        zone = zoneinfo.ZoneInfo(zone_name)
        used: set[int] = set()
        histories = [make_history(rng, zone, f"host{i % 9}", used) for i in range(GROUPS_PER_REPO)]
        path = tmp_path / f"repo{r}"
        write_repo(path, histories)
        env = dict(os.environ, TZ=zone_name, RESTIC_PASSWORD=PASSWORD, SHADOWVAULT_PASSWORD=PASSWORD)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH", "")]))
        env.pop("SHADOWVAULT_CONFIG", None)
        for _ in range(policies_per_repo):
            flags = make_policy(rng)
            theirs = subprocess.run(
                ["restic", "-r", str(path), "--no-cache", "forget", "--dry-run", "--json", *flags],
                capture_output=True,
                text=True,
                env=env,
                timeout=120,
            )
            assert theirs.returncode == 0, theirs.stderr
            ours = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "shadowvault",
                    "forget",
                    "--repo",
                    str(path),
                    "--dry-run",
                    "--json",
                    "--restic-rules",
                    rules,
                    *flags,
                ],
                capture_output=True,
                text=True,
                env=env,
                timeout=120,
            )
            assert ours.returncode == 0, ours.stderr
            want = kept(json_list(theirs.stdout))
            got = kept(json_list(ours.stdout))
            context = f"seed {seed}, zone {zone_name}, repo {path}, policy {' '.join(flags)}"
            assert set(got) == set(want), context
            for key in want:
                assert got[key] == want[key], f"{context}: group {key} differs"
            compared += len(want)
    assert compared >= min(cases, REPOS * policies_per_repo)
