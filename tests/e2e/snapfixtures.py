"""Helpers for the snapshot end-to-end tests: loop-mounted file systems, busy writers, leftover checks.

Everything here works on real kernels objects: sparse images attached to loop
devices, real mounts, writer processes that run ``sqlite3`` or ``pwrite`` in a
loop while ``shadowvault backup`` reads. Teardown always unmounts and detaches,
also when a test fails half-way.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from loopfs import sh
from shadowvault.engine.backup import BackupOptions, BackupSession
from shadowvault.engine.events import Event, EventSink, FileDone
from shadowvault.repo import LocalBackend, Repository
from treeutil import PASSWORD, env, sv

#: Hidden names every provider gives its snapshots and work dirs (prefix "shadowvault").
HIDDEN_PREFIX = ".shadowvault"


def dead_pid() -> int:
    """A pid whose process has exited (reuse within a test run is very unlikely)."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


# ---- what a session may leave behind ---------------------------------------------------------


def our_subvolumes(mnt: Path) -> list[str]:
    """Lines of ``btrfs subvolume list -a`` naming one of our snapshots."""
    listing = sh("btrfs", "subvolume", "list", "-a", str(mnt))
    return [line for line in listing.splitlines() if HIDDEN_PREFIX in line]


def hidden_entries(*dirs: Path) -> list[str]:
    """Our hidden names (snapshots, reflink work dirs, probe files) directly in ``dirs``."""
    return sorted(str(d / n) for d in dirs for n in os.listdir(d) if n.startswith(HIDDEN_PREFIX))


def our_mounts() -> list[str]:
    """Lines of /proc/self/mountinfo whose mount point or root is a snapshot of ours.

    Only those two fields are looked at, by our naming (a hidden ``.shadowvault`` entry or the LVM
    mount base ``/run/shadowvault``): the test's own loop mounts live under a temporary directory
    whose name may say "shadowvault" too (CI's is ``/tmp/shadowvault-ci.XXXXXX``)."""
    found = []
    with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as f:
        for line in f:
            fields = line.split()
            root, mount_point = fields[3], fields[4]
            for path in (root, mount_point):
                if f"/{HIDDEN_PREFIX}" in path or path.startswith("/run/shadowvault"):
                    found.append(line)
                    break
    return found


def leftovers(mnt: Path, *dirs: Path, btrfs: bool) -> list[str]:
    """Everything of ours still present on ``mnt`` (and in ``dirs``): must be empty between sessions."""
    found = hidden_entries(mnt, *dirs) + our_mounts()
    if btrfs:
        found += our_subvolumes(mnt)
    return found


# ---- shadowvault output ------------------------------------------------------------------------


def json_lines(stdout: str) -> list[dict[str, Any]]:
    """Every JSON object line of ``--json`` output."""
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def summary(stdout: str) -> dict[str, Any]:
    """The summary line of ``backup --json``."""
    found = [d for d in json_lines(stdout) if d.get("message_type") == "summary"]
    assert found, f"no summary in:\n{stdout}"
    return found[-1]


def warnings(stdout: str) -> list[str]:
    """Messages of the JSON warning lines."""
    return [str(d["message"]) for d in json_lines(stdout) if d.get("message_type") == "warning"]


# ---- busy writers ------------------------------------------------------------------------------

SQLITE_WRITER = textwrap.dedent(
    """
    import sqlite3, sys
    path, mode = sys.argv[1], sys.argv[2]
    con = sqlite3.connect(path, isolation_level=None)
    con.execute(f"PRAGMA journal_mode={mode}")
    con.execute("CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, body BLOB, k TEXT)")
    con.execute("CREATE INDEX IF NOT EXISTS t_k ON t(k)")
    con.execute("CREATE TABLE IF NOT EXISTS meta(seq INTEGER, total INTEGER)")
    if con.execute("SELECT count(*) FROM meta").fetchone()[0] == 0:
        con.execute("INSERT INTO meta VALUES (0, 0)")
    seq = 0
    while True:
        # Each transaction touches many pages (rows, index, deletes, meta): a torn copy shows.
        con.execute("BEGIN IMMEDIATE")
        for _ in range(8):
            con.execute("INSERT INTO t(body, k) VALUES (randomblob(1500), hex(randomblob(12)))")
        con.execute("DELETE FROM t WHERE id <= (SELECT max(id) FROM t) - 1500")
        con.execute("UPDATE meta SET seq = seq + 1, total = (SELECT count(*) FROM t)")
        con.execute("COMMIT")
        seq += 1
        if seq == 20:
            print("running", flush=True)
    """
)

#: A writer like many C programs: no busy handler, so any lock held by someone else is an error
#: (SQLITE_BUSY) it sees. Runs until argv[3] exists, then prints "<commits> <busy errors>".
SQLITE_NO_BUSY_TIMEOUT = textwrap.dedent(
    """
    import os, sqlite3, sys
    con = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=0)
    con.execute(f"PRAGMA journal_mode={sys.argv[2]}")
    con.execute("CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, body BLOB)")
    ok = busy = 0
    while not os.path.exists(sys.argv[3]):
        try:
            con.execute("BEGIN IMMEDIATE")
            con.execute("INSERT INTO t(body) VALUES (randomblob(1500))")
            con.execute("COMMIT")
            ok += 1
        except sqlite3.OperationalError:
            busy += 1
            if con.in_transaction:
                con.execute("ROLLBACK")
        if ok == 20 and not busy:
            print("running", flush=True)
    print(ok, busy, flush=True)
    """
)

OVERWRITER = textwrap.dedent(
    """
    import os, sys, time
    fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o644)
    size = int(sys.argv[2])
    i = 0
    while True:
        # One pwrite per state: the whole file holds one byte value between calls.
        os.pwrite(fd, bytes([i % 250 + 1]) * size, 0)
        i += 1
        time.sleep(0.001)  # continuous, but leaves the other helpers' tests some CPU
        if i == 3:
            print("running", flush=True)
    """
)


@contextmanager
def writer(script: str, *args: str) -> Iterator[subprocess.Popen[str]]:
    """Run a writer script in its own process until the block ends; it must still run then."""
    proc = subprocess.Popen(
        [sys.executable, "-c", script, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if line.strip() != "running":
            proc.kill()
            raise AssertionError(f"writer did not start: {line!r} {proc.communicate(timeout=30)[1]}")
        yield proc
        if proc.poll() is not None:
            raise AssertionError(f"writer died during the test: {proc.communicate(timeout=30)[1]}")
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)


def check_database(path: Path) -> tuple[int, int]:
    """Open a restored database; it must pass integrity_check and its own invariant. Returns (seq, rows)."""
    assert path.is_file(), f"{path} was not restored"
    con = sqlite3.connect(path)
    try:
        assert con.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        seq, total = con.execute("SELECT seq, total FROM meta").fetchone()
        rows = con.execute("SELECT count(*) FROM t").fetchone()[0]
        # meta.total is set inside every transaction: a copy mixing two transactions breaks it.
        assert rows == total, f"{path}: {rows} rows but meta says {total}"
        return int(seq), int(rows)
    finally:
        con.close()


def restored(target: Path, original: Path) -> Path:
    """Where restore puts ``original`` under ``target`` (the full original path, as restic does)."""
    return target / original.relative_to("/")


# ---- sources, backups and what they stored ------------------------------------------------------


def last_session_warnings(repo: Path) -> list[str]:
    """Warnings the activity log (the session log) of ``repo`` kept for its latest session."""
    sessions = json.loads(sv("activity", "--json", "--limit", "1", repo=repo).stdout)  # newest first
    assert sessions, "no session in the activity log"
    return [str(w) for w in sessions[0]["warnings"]]


def fresh_dir(parent: Path, name: str) -> Path:
    """A new, empty directory for one test."""
    path = parent / name
    path.mkdir()
    return path


def live_reasons(messages: list[str]) -> list[str]:
    """Messages saying a source is read without a snapshot."""
    return [m for m in messages if "read live" in m]


def repo_snapshots(repo: Path) -> list[dict[str, object]]:
    """What `shadowvault snapshots --json` lists."""
    listing = json.loads(sv("snapshots", "--json", repo=repo).stdout)
    assert isinstance(listing, list)
    return listing


def api_backup(repo: Path, options: BackupOptions, sink: EventSink) -> None:
    """Run BackupSession in this process like the CLI does (lock, index, run)."""
    r = Repository.open(LocalBackend(repo), PASSWORD)
    try:
        with r.lock(exclusive=False):
            r.load_index()
            BackupSession(r, options, sink).run()
    finally:
        r.close()


def stored_entries(repo: Path, snapshot_id: str) -> dict[str, str]:
    """Every path a snapshot holds and its node type (read in-process: no CLI start-up per call)."""
    r = Repository.open(LocalBackend(repo), PASSWORD)
    found: dict[str, str] = {}
    try:
        r.load_index()
        _, snap = r.find_snapshot(snapshot_id)
        pending: list[tuple[str, bytes | None]] = [("", snap.tree)]
        while pending:
            prefix, tree_id = pending.pop()
            if tree_id is None:
                continue
            for node in r.load_tree(tree_id).nodes:
                path = f"{prefix}/{node.name}"
                found[path] = node.type
                if node.type == "dir":
                    pending.append((path, node.subtree))
    finally:
        r.close()
    return found


class FailingSink:
    """An event sink that breaks the backup at its first file: a real failure mid-session."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)
        if isinstance(event, FileDone):
            raise RuntimeError("sink broke")


def make_big_source(src: Path) -> Path:
    """~64 MiB of incompressible files: a backup of them runs for a few seconds."""
    src.mkdir()
    block = os.urandom(1024 * 1024)
    for i in range(8):
        with open(src / f"big-{i}.bin", "wb") as f:
            for j in range(8):
                f.write(bytes([i, j]) + block[2:])  # unique per MiB: nothing deduplicates
    return src


def signal_mid_backup(
    mnt: Path, parent: Path, source: Path, repo: Path, sig: signal.Signals
) -> tuple[int, str]:
    """Start ``backup --snapshot auto source``, send ``sig`` once it reads; (exit status, stderr)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "shadowvault", "backup", "--json", "--snapshot", "auto", "--pack-size", "4",
         str(source)],
        env=env(repo), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        reading = False
        while proc.poll() is None and time.monotonic() < deadline:
            # Reading has begun once a data pack is written while our snapshot/work dir exists.
            packs = [p for p in (repo / "data").rglob("*") if p.is_file()]
            if packs and leftovers(mnt, parent, btrfs=mnt.name == "mnt-btrfs"):
                reading = True
                break
            time.sleep(0.02)
        assert reading and proc.poll() is None, "the backup ended before it could be interrupted"
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return proc.returncode, err


def count_cmd(label: str, where: Path, log: Path) -> str:
    """Shell: log ``label`` and how many of our snapshots ``where`` holds right now."""
    return f"echo {label} $(ls -a {where} | grep -c '^.shadowvault-snap-') >> {log}"


def backed_up(repo: Path, src: Path, *flags: str) -> set[str]:
    """Paths (relative to ``src``) that one ``backup FLAGS src`` stored; the backup must succeed."""
    p = sv("backup", "--json", *flags, str(src), repo=repo, check=False)
    assert p.returncode == 0, p.stdout + p.stderr
    prefix = f"{src}/"
    stored = stored_entries(repo, str(summary(p.stdout)["snapshot_id"]))
    return {path[len(prefix) :] for path in stored if path.startswith(prefix)}


def small_tree(src: Path) -> None:
    (src / "sub").mkdir(parents=True)
    (src / "top.txt").write_text("top\n")
    (src / "sub" / "deep.txt").write_text("deep\n")
