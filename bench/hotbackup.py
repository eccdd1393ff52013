"""Benchmark: a PostgreSQL database into a repository, the restic way against shadowvault's.

* **restic way** (what restic users script today): ``pg_dump -Fc -f FILE`` then ``restic backup FILE``;
  needs temporary space the size of the dump.
* **shadowvault**: a ``type = "postgresql"`` set; ``pg_dump --format=custom`` streamed into the
  repository, no temporary file.

Each step is one process measured with ``os.wait4`` (wall, CPU, peak RSS of that process and what it
reaped). The database is half ``pgbench -i`` tables, half a table of hex text. The server is the one
``SHADOWVAULT_TEST_PG_*`` points at, else a private one started with ``.ci/services/postgresql.sh``
(root needed). Checks: ``restic check`` of shadowvault's repository and a ``restore --database`` into
a fresh database whose ``pgbench_accounts`` row count must match.

    python3 bench/hotbackup.py --size-gb 1        # ~1 GB database (a few minutes to create)
    python3 bench/hotbackup.py --size-gb 0.1      # quick look
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from measure import Measurement, run_measured
from tools import tool_env

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / ".ci" / "services" / "postgresql.sh"
MB_PER_SCALE = 15.6  # pgbench's tables and indexes per scale unit, as measured by pg_database_size
DOC_ROW_BYTES = 300  # one row of `documents` on disk (8 hex digests of 32 characters, spaces, header)


def _server(work: Path) -> tuple[dict[str, str], bool]:
    found = {k: v for k, v in os.environ.items() if k.startswith("SHADOWVAULT_TEST_PG_")}
    if found:
        return found, False
    out = subprocess.run(
        ["bash", str(SCRIPT), "start", str(work)], capture_output=True, text=True, check=True
    )
    values = dict(
        line[len("export ") :].split("=", 1) for line in out.stdout.splitlines() if line.startswith("export ")
    )
    return values, True


def _pg_env(pg: dict[str, str], work: Path) -> dict[str, str]:
    pgpass = work / "pgpass"
    pgpass.write_text(f"*:*:*:*:{Path(pg['SHADOWVAULT_TEST_PG_PASSWORD_FILE']).read_text().strip()}\n")
    pgpass.chmod(0o600)
    env = dict(os.environ)
    env.update(
        PGHOST=pg["SHADOWVAULT_TEST_PG_HOST"],
        PGPORT=pg["SHADOWVAULT_TEST_PG_PORT"],
        PGUSER=pg["SHADOWVAULT_TEST_PG_USER"],
        PGPASSFILE=str(pgpass),
    )
    return env


def _psql(env: dict[str, str], sql: str, db: str = "postgres") -> str:
    out = subprocess.run(
        ["psql", "-X", "-w", "-At", "-d", db, "-c", sql], env=env, capture_output=True, text=True
    )
    if out.returncode != 0:
        raise SystemExit(f"psql failed: {out.stderr.strip()}")
    return out.stdout.strip()


def _ensure_database(env: dict[str, str], size_gb: float) -> int:
    """``benchdump`` of about ``size_gb`` GB (kept between runs on the same server); its size.

    Half pgbench's tables (their filler columns are blanks, which pg_dump's zlib shrinks ~50x),
    half a ``documents`` table of hex text (compresses about 2:1), so the dump stream is sizeable.
    """
    scale = max(1, round(size_gb * 500 / MB_PER_SCALE))
    rows = max(1000, int(size_gb * 0.5e9 / DOC_ROW_BYTES))
    tag = f"{scale}:{rows}"
    have = _psql(env, "SELECT count(*) FROM pg_database WHERE datname = 'benchdump'") == "1"
    if (
        have
        and _psql(env, "SELECT coalesce(obj_description(to_regclass('documents')), '')", "benchdump") != tag
    ):
        _psql(env, "DROP DATABASE benchdump")
        have = False
    if not have:
        print(f"creating benchdump (pgbench scale {scale}, {rows} documents)…", file=sys.stderr)
        _psql(env, "CREATE DATABASE benchdump")
        subprocess.run(["pgbench", "-i", "-q", "-s", str(scale), "benchdump"], env=env, check=True)
        _psql(
            env,
            "CREATE TABLE documents AS SELECT g AS id, "
            "(SELECT string_agg(md5((g * 8 + i)::text), ' ') FROM generate_series(1, 8) i) AS body "
            f"FROM generate_series(1, {rows}) g",
            "benchdump",
        )
        _psql(env, f"COMMENT ON TABLE documents IS '{tag}'", "benchdump")
        # The first scan of freshly written rows sets their hint bits and so rewrites every page:
        # whichever way ran first paid for it (wall 22 s against 16 s on a 0.3 GB database, in
        # both orders). A freeze now makes both ways read the same settled pages.
        _psql(env, "VACUUM (FREEZE, ANALYZE)", "benchdump")
    return int(_psql(env, "SELECT pg_database_size('benchdump')"))


def _row(name: str, ms: list[Measurement]) -> dict[str, float]:
    return {
        "wall_s": round(sum(m.wall_s for m in ms), 2),
        "cpu_s": round(sum(m.cpu_s for m in ms), 2),
        "peak_rss_mib": round(max(m.peak_rss_kib for m in ms) / 1024, 1),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-gb", type=float, default=1.0, help="database size on disk (default 1)")
    ap.add_argument("--json", action="store_true", help="print the result as JSON")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--shadowvault-first", action="store_true", help="run shadowvault's way first")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="shadowvault-bench-db-"))
    pg, started = _server(work)
    try:
        env_pg = _pg_env(pg, work)
        db_bytes = _ensure_database(env_pg, args.size_gb)
        logs = work / "logs"
        tools = {**tool_env(work), **{k: v for k, v in env_pg.items() if k.startswith("PG")}}
        tools["PYTHONPATH"] = str(ROOT / "src")

        def restic_way() -> tuple[Measurement, Measurement, int]:
            # restic users' way: dump to a file, then back the file up
            dump_file = work / "benchdump.dump"
            restic_repo = work / "restic-repo"
            subprocess.run(
                ["restic", "init", "-r", str(restic_repo)], env=tools, capture_output=True, check=True
            )
            dump = run_measured(
                ["pg_dump", "-w", "-Fc", "-f", str(dump_file), "benchdump"], tools, logs, "pg_dump"
            )
            temp_bytes = dump_file.stat().st_size
            backup = run_measured(
                ["restic", "-r", str(restic_repo), "backup", str(dump_file)], tools, logs, "restic"
            )
            for m in (dump, backup):
                if m.returncode:
                    raise SystemExit(f"{m.argv[0]} failed: {m.stderr_tail()}")
            dump_file.unlink()
            return dump, backup, temp_bytes

        def streamed() -> Measurement:
            # shadowvault: one streamed set
            cfg.write_text(
                f'[repository]\npath = "{sv_repo}"\n\n[sets.bench]\ntype = "postgresql"\n'
                f'databases = ["benchdump"]\n'
            )
            subprocess.run([*sv, "init", "--repo", str(sv_repo)], env=tools, capture_output=True, check=True)
            ours = run_measured(
                [*sv, "backup", "--config", str(cfg), "--set", "bench", "--json"], tools, logs, "sv"
            )
            if ours.returncode:
                raise SystemExit(f"shadowvault failed: {ours.stderr_tail()}")
            return ours

        sv_repo = work / "sv-repo"
        cfg = work / "config.toml"
        sv = [sys.executable, "-m", "shadowvault"]
        if args.shadowvault_first:
            ours = streamed()
            dump, backup, temp_bytes = restic_way()
        else:
            dump, backup, temp_bytes = restic_way()
            ours = streamed()

        # checks: restic accepts our repository; the stored dump restores with every row
        check = subprocess.run(
            ["restic", "-r", str(sv_repo), "check"], env=tools, capture_output=True, text=True
        )
        if check.returncode:
            raise SystemExit(f"restic check of shadowvault's repository failed: {check.stderr}")
        _psql(env_pg, "DROP DATABASE IF EXISTS benchdump_check")
        restore = subprocess.run(
            [*sv, "restore", "latest", "--database", "benchdump", "--to-database", "benchdump_check",
             "--config", str(cfg)],
            env=tools, capture_output=True, text=True,
        )  # fmt: skip
        if restore.returncode:
            raise SystemExit(f"restore --database failed: {restore.stderr}")
        want = _psql(env_pg, "SELECT count(*) FROM pgbench_accounts", "benchdump")
        got = _psql(env_pg, "SELECT count(*) FROM pgbench_accounts", "benchdump_check")
        if want != got:
            raise SystemExit(f"restored pgbench_accounts has {got} rows, the database {want}")
        _psql(env_pg, "DROP DATABASE benchdump_check")

        result = {
            "database_bytes": db_bytes,
            "dump_bytes": temp_bytes,
            "load_at_end": round(os.getloadavg()[0], 2),
            "order": "shadowvault first" if args.shadowvault_first else "restic way first",
            "restic_way": {**_row("restic", [dump, backup]), "temp_bytes": temp_bytes},
            "shadowvault": {**_row("shadowvault", [ours]), "temp_bytes": 0},
        }
        result["ratio_wall"] = round(result["shadowvault"]["wall_s"] / result["restic_way"]["wall_s"], 3)
        if args.json:
            print(json.dumps(result, indent=2))
        else:
            print(f"database {db_bytes / 1e9:.2f} GB, custom-format dump {temp_bytes / 1e6:.0f} MB")
            print(f"{'way':<34} {'wall s':>8} {'CPU s':>8} {'peak RSS MiB':>13} {'temp MB':>8}")
            for label, key in (
                ("pg_dump -Fc > file; restic backup", "restic_way"),
                ("shadowvault set", "shadowvault"),
            ):
                r = result[key]
                temp_mb = r["temp_bytes"] / 1e6
                print(f"{label:<34} {r['wall_s']:>8} {r['cpu_s']:>8} {r['peak_rss_mib']:>13} {temp_mb:>8.0f}")
            print(f"ratio (shadowvault / restic way, wall): {result['ratio_wall']}")
        return 0
    finally:
        if started:
            subprocess.run(["bash", str(SCRIPT), "stop", str(work)], capture_output=True)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
