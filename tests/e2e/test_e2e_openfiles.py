"""Issue 4 through the engine and CLI: real writer processes, outcomes in the snapshot, restic restores."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from conftest import require_binary, require_root
from shadowvault.engine.backup import BackupOptions, BackupSession
from shadowvault.engine.events import FileDone, ListSink, Warning_
from shadowvault.openfiles import RetryPolicy, Strategy
from shadowvault.repo import LocalBackend, Repository
from treeutil import PASSWORD, env, restic, sv

HOLD = (
    "import sys, time\n"
    "f = open(sys.argv[1], 'ab')\n"
    "print('ready', flush=True)\n"
    "time.sleep(float(sys.argv[2]))\n"
)
APPEND = (
    "import sys, time\n"
    "print('ready', flush=True)\n"
    "while True:\n"
    "    with open(sys.argv[1], 'ab') as f:\n"
    "        f.write(b'appended line\\n' * 64)\n"
    "    time.sleep(0.001)\n"
)
SQLITE_WRITER = (
    "import sqlite3, sys, time\n"
    "db = sqlite3.connect(sys.argv[1], timeout=60, isolation_level=None)\n"
    "db.execute('PRAGMA journal_mode=DELETE')\n"
    "db.execute('CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v BLOB)')\n"
    "print('ready', flush=True)\n"
    "i = 0\n"
    "while True:\n"
    "    db.execute('BEGIN IMMEDIATE')\n"
    "    for _ in range(50):\n"
    "        db.execute('INSERT INTO t (v) VALUES (randomblob(3000))')\n"
    "    db.execute('DELETE FROM t WHERE id % 7 = ?', (i % 7,))\n"
    "    db.execute('COMMIT')\n"
    "    i += 1\n"
    "    time.sleep(0.002)\n"
)


def start(script: str, *args: str) -> subprocess.Popen[str]:
    """A real writer process; returns once it said 'ready'."""
    p = subprocess.Popen([sys.executable, "-c", script, *args], stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    return p


def stop(p: subprocess.Popen[str]) -> None:
    p.kill()
    p.wait()
    if p.stdout is not None:
        p.stdout.close()


def comm(pid: int) -> str:
    return Path(f"/proc/{pid}/comm").read_text().strip()


def json_lines(stdout: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def files_of(stdout: str) -> dict[str, dict[str, object]]:
    return {str(d["path"]): d for d in json_lines(stdout) if d.get("message_type") == "file"}


def summary(stdout: str) -> dict[str, object]:
    return [d for d in json_lines(stdout) if d.get("message_type") == "summary"][-1]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    sv("init", repo=path)
    return path


@pytest.fixture
def src(tmp_path: Path) -> Iterator[Path]:
    d = tmp_path / "src"
    d.mkdir()
    (d / "quiet.txt").write_text("nobody writes me\n")
    yield d


def restic_restores(repo: Path, target: Path, src: Path) -> Path:
    require_binary("restic")
    restic("check", "--read-data", repo=repo)
    restic("restore", "latest", "--target", str(target), repo=repo)
    return target / str(src).lstrip("/")


def test_appended_during_read_is_suspect_changed(repo: Path, src: Path, tmp_path: Path) -> None:
    log = src / "growing.log"
    log.write_bytes(os.urandom(64 * 1024 * 1024))
    writer = start(APPEND, str(log))
    try:
        p = sv("backup", "--json", "--open-files", "allow-write", str(src), repo=repo, check=False)
    finally:
        stop(writer)
    assert p.returncode == 4, p.stderr
    outcome = files_of(p.stdout)[str(log)]
    assert outcome["class"] == "suspect" and outcome["reason"] == "changed-during-read"
    assert "changed" in str(outcome["message"])
    out = restic_restores(repo, tmp_path / "r", src)
    assert (out / "quiet.txt").read_text() == "nobody writes me\n"
    assert (out / "growing.log").stat().st_size >= 64 * 1024 * 1024


@pytest.mark.parametrize(
    ("strategy", "code", "cls", "attempts"),
    [("deny-write", 3, "failed", 3), ("try-deny-write", 4, "suspect", 1), ("allow-write", 4, "suspect", 1)],
)
def test_file_held_open_for_writing(
    repo: Path, src: Path, tmp_path: Path, strategy: str, code: int, cls: str, attempts: int
) -> None:
    held = src / "held.db"
    held.write_bytes(b"x" * 10000)
    writer = start(HOLD, str(held), "120")
    command = comm(writer.pid)
    try:
        p = sv(
            "backup",
            "--json",
            "--open-files",
            strategy,
            "--retry-times",
            "2",
            "--retry-interval",
            "0",
            str(src),
            repo=repo,
            check=False,
        )
    finally:
        stop(writer)
    assert p.returncode == code, p.stderr
    outcome = files_of(p.stdout)[str(held)]
    assert outcome["class"] == cls and outcome["attempts"] == attempts
    assert outcome["writers"] == [{"pid": writer.pid, "command": command}]
    assert f"pid {writer.pid}" in str(outcome["message"])
    # The outcome is stored in the repository snapshot, and restic still reads it.
    snap = json.loads(sv("cat", "snapshot", "latest", repo=repo).stdout)
    stored = {o["path"]: o for o in snap["shadowvault"]["outcomes"]}
    assert stored[str(held)]["class"] == cls
    out = restic_restores(repo, tmp_path / "r", src)
    assert (out / "held.db").exists() == (cls != "failed")
    listing = sv("ls", "--long", "latest", repo=repo).stdout
    if cls == "suspect":
        assert any("held.db" in line and "[suspect:" in line for line in listing.splitlines())


def api_backup(
    repo: Path, options: BackupOptions, start_writer: Callable[[], subprocess.Popen[str]]
) -> tuple[int, ListSink]:
    """Run a session through the Python API (events in order), then stop the writer.

    The writer starts once the repository is open and locked: on a loaded machine the key
    derivation alone can outlast a writer that holds its file for two seconds.
    """
    r = Repository.open(LocalBackend(repo), PASSWORD)
    r.load_index()
    sink = ListSink()
    with r.lock():
        writer = start_writer()
        try:
            result = BackupSession(r, options, sink).run()
        finally:
            stop(writer)
    return result.exit_code, sink


def test_writer_that_leaves_lets_deny_write_succeed_on_retry(repo: Path, src: Path) -> None:
    held = src / "briefly.db"
    held.write_bytes(b"y" * 5000)
    options = BackupOptions(
        sources=[str(src)],
        strategy=Strategy.DENY_WRITE,
        retry=RetryPolicy(times=5, interval=1, on_change=False),
    )
    code, sink = api_backup(repo, options, lambda: start(HOLD, str(held), "2"))
    done = {e.path: e for e in sink.events if isinstance(e, FileDone)}
    assert code == 0
    assert done[str(held)].outcome.classification.value == "ok"
    assert done[str(held)].outcome.attempts > 1


def test_retries_do_not_stall_the_session(repo: Path, tmp_path: Path) -> None:
    src = tmp_path / "many"
    (src / "a").mkdir(parents=True)
    blocked = src / "a" / "0-blocked.bin"
    blocked.write_bytes(b"z" * 100)
    for i in range(1000):
        (src / "a" / f"small-{i:04d}.txt").write_text(f"file {i}\n")
    options = BackupOptions(
        sources=[str(src)],
        strategy=Strategy.DENY_WRITE,
        retry=RetryPolicy(times=3, interval=5, on_change=False),
    )
    code, sink = api_backup(repo, options, lambda: start(HOLD, str(blocked), "300"))
    order = [e.path for e in sink.events if isinstance(e, FileDone)]
    assert len(order) == 1001
    assert order[-1] == str(blocked), "the waiting file held up the others"
    last = [e for e in sink.events if isinstance(e, FileDone)][-1]
    assert last.outcome.classification.value == "failed" and last.outcome.attempts == 4
    assert code == 3


def test_prevent_write_against_sqlite_gives_consistent_copies(repo: Path, src: Path, tmp_path: Path) -> None:
    db = src / "app.db"
    writer = start(SQLITE_WRITER, str(db))
    try:
        time.sleep(0.5)
        for round_ in range(5):
            p = sv(
                "backup",
                "--json",
                "--open-files",
                "prevent-write",
                "--retry-times",
                "10",
                "--retry-interval",
                "1",
                str(src),
                repo=repo,
                check=False,
            )
            failed = [ln for ln in p.stdout.splitlines() if '"failed"' in ln]
            assert p.returncode in (0, 4), [*failed, p.stderr]
            target = tmp_path / f"r{round_}"
            sv("restore", "latest", "--target", str(target), "--include", "**/app.db", repo=repo)
            restored = target / str(db).lstrip("/")
            con = sqlite3.connect(restored)
            try:
                assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
                assert con.execute("SELECT count(*) FROM t").fetchone()[0] >= 0
            finally:
                con.close()
    finally:
        stop(writer)
    restic_restores(repo, tmp_path / "restic", src)


def test_restore_skip_and_only_suspect(repo: Path, src: Path, tmp_path: Path) -> None:
    held = src / "held.log"
    held.write_text("held\n")
    writer = start(HOLD, str(held), "60")
    try:
        assert sv("backup", str(src), repo=repo, check=False).returncode == 4
    finally:
        stop(writer)
    skip = tmp_path / "skip"
    sv("restore", "latest", "--target", str(skip), "--skip-suspect", repo=repo)
    base = skip / str(src).lstrip("/")
    assert (base / "quiet.txt").exists() and not (base / "held.log").exists()
    only = tmp_path / "only"
    p = sv("restore", "latest", "--target", str(only), "--only-suspect", repo=repo)
    base = only / str(src).lstrip("/")
    assert (base / "held.log").exists() and not (base / "quiet.txt").exists()
    assert "suspect" in p.stdout


def test_unprivileged_user_gets_one_lease_warning_and_stat_classes(repo: Path, tmp_path: Path) -> None:
    require_root()
    src = tmp_path / "rootfiles"
    src.mkdir()
    for i in range(3):
        (src / f"f{i}.txt").write_text("owned by root\n")
    # Without leases and without sight of root's /proc entries, only the stat check is left: a
    # file appended to while read is suspect, unchanged files are ok.
    held = src / "held.txt"
    held.write_bytes(os.urandom(32 * 1024 * 1024))
    for d in [tmp_path, *tmp_path.parents]:
        if d == Path("/tmp"):
            break
        os.chmod(d, 0o755)
    os.chmod(src, 0o755)
    unpriv_repo = tmp_path / "nobody-repo"
    unpriv_repo.mkdir()
    os.chown(unpriv_repo, 65534, 65534)
    writer = start(APPEND, str(held))
    script = (
        "import os, sys\n"
        "from shadowvault.cli import main\n"
        "import shadowvault.config, shadowvault.cli.commands.init, shadowvault.cli.commands.backup\n"
        # The interpreter lives under /root here: load lazily imported codecs before dropping root.
        "import encodings.ascii, encodings.latin_1, encodings.utf_8, encodings.idna\n"
        "os.setgid(65534); os.setuid(65534)\n"
        "code = main(['init', '--repo', sys.argv[1]])\n"
        "assert code == 0, code\n"
        "raise SystemExit(main(['backup', '--json', '--repo', sys.argv[1], sys.argv[2]]))\n"
    )
    e = env(None, HOME=str(unpriv_repo))
    try:
        p = subprocess.run(
            [sys.executable, "-c", script, str(unpriv_repo / "r"), str(src)],
            capture_output=True,
            text=True,
            env=e,
            timeout=120,
        )
    finally:
        stop(writer)
    lines = json_lines(p.stdout)
    warnings = [d for d in lines if d.get("message_type") == "warning" and "lease" in str(d["message"])]
    assert len(warnings) == 1, p.stdout + p.stderr
    assert p.returncode == 4, p.stdout + p.stderr
    assert files_of(p.stdout)[str(held)]["class"] == "suspect"
    assert files_of(p.stdout)[str(held)]["reason"] == "changed-during-read"
    assert summary(p.stdout)["files_ok"] == 3


def test_lease_warning_is_emitted_once_via_the_python_api(repo: Path, src: Path) -> None:
    """Sanity check of the sink: root gets no lease warning at all for its own files."""
    require_root()
    r = Repository.open(LocalBackend(repo), PASSWORD)
    r.load_index()
    sink = ListSink()
    with r.lock():
        BackupSession(r, BackupOptions(sources=[str(src)]), sink).run()
    assert not [e for e in sink.events if isinstance(e, Warning_) and "lease" in e.message]
