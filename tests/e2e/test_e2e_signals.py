"""Issue 11 (3, 4): SIGINT and SIGTERM at any moment of a run end it cleanly.

One line (``interrupted``) on stderr, exit 130 / 143, no lock left in the repository, the activity
session closed as ``interrupted`` with that code, and a repository restic accepts. The sweep sends
the signal at 20 moments spread from 0.05 s after launch to the end of a small backup, so it lands
in the interpreter's imports, argument parsing, key derivation, the lock's settling pause, the
walk, the uploads and the closing writes.

What comes before the program's first instruction belongs to the interpreter: here its start-up
alone (site-packages and their .pth files) takes 0.2 s or more under load, and a signal then is
Python's own (a traceback from ``site``, or death by SIGTERM). So a signal is sent at its moment
or, if that falls earlier, as soon as the process catches SIGTERM (``SigCgt`` in /proc), which
is the first thing ``python -m shadowvault`` does.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from conftest import require_binary
from treeutil import env, restic, sv

MOMENTS = 20


def _source(path: Path) -> None:
    for d in range(8):
        sub = path / f"d{d}"
        sub.mkdir(parents=True)
        for f in range(25):
            (sub / f"f{f:02d}.bin").write_bytes(os.urandom(8 * 1024 + d * 997 + f))
    (path / "big.bin").write_bytes(os.urandom(3 * 1024 * 1024))


def _launch(repo: Path, src: Path, state: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "shadowvault", "backup", "--force", str(src)],
        env=env(repo, XDG_STATE_HOME=str(state)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _catches_sigterm(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True  # gone: it finished (or died), which the caller sees from its exit status
    caught = int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:")), 16)
    return bool(caught & (1 << (signal.SIGTERM - 1)))


def _sessions(state: Path) -> list[tuple[str, int | None]]:
    dbs = list(state.rglob("*.db"))
    rows: list[tuple[str, int | None]] = []
    for db in dbs:
        with sqlite3.connect(db) as conn:
            rows += conn.execute("SELECT status, exit_code FROM sessions ORDER BY id").fetchall()
    return rows


def test_signal_sweep_from_launch_to_the_end_of_a_backup(tmp_path: Path) -> None:
    require_binary("restic")
    repo, src, state = tmp_path / "repo", tmp_path / "src", tmp_path / "state"
    _source(src)
    sv("init", repo=repo)
    # How long an uninterrupted run takes here, from launch to exit (the machine may be busy:
    # the faster of two runs, so few of the late moments come after a quicker run's end).
    durations = []
    for _ in range(2):
        t0 = time.monotonic()
        p = _launch(repo, src, state)
        _, err = p.communicate(timeout=120)
        durations.append(time.monotonic() - t0)
        assert p.returncode == 0, err
    duration = min(durations)
    baseline = len(_sessions(state))

    results = []
    for i in range(MOMENTS):
        # Up to 70 % of the baseline: a run can be quicker than the baseline when the machine's load
        # drops, and the sweep is about interrupting runs, not about racing their ends.
        moment = 0.05 + (duration * 0.7 - 0.05) * i / (MOMENTS - 1)
        sig = signal.SIGINT if i % 2 == 0 else signal.SIGTERM
        launched = time.monotonic()
        proc = _launch(repo, src, state)
        time.sleep(max(0.0, launched + moment - time.monotonic()))
        while proc.poll() is None and not _catches_sigterm(proc.pid):
            time.sleep(0.002)
        finished_first = proc.poll() is not None
        if not finished_first:
            proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
        results.append((round(moment, 2), sig.name, proc.returncode, finished_first, err.decode()))
        lines = err.decode().splitlines()
        what = f"moment {moment:.2f} s, {sig.name}: exit {proc.returncode}, stderr {lines!r}"
        assert b"Traceback" not in err, what
        assert len(lines) <= 1, what
        if finished_first:  # the run was faster this time: it must simply have succeeded
            assert proc.returncode == 0, what
            continue
        assert proc.returncode == 128 + sig, what
        assert lines == ["interrupted"], what
        assert not list((repo / "locks").iterdir()), what
    interrupted = [r for r in results if not r[3]]
    assert len(interrupted) >= MOMENTS - 5, results

    # Every session that got as far as the activity log was closed as interrupted with the code.
    for status, code in _sessions(state)[baseline:]:
        assert status in ("interrupted", "completed"), _sessions(state)
        if status == "interrupted":
            assert code in (130, 143), _sessions(state)
    restic("check", "--read-data", repo=repo)
    # And the repository still takes a backup that restores.
    p2 = sv("backup", "--json", str(src), repo=repo)
    assert json.loads(p2.stdout.splitlines()[-1])["exit_code"] == 0
