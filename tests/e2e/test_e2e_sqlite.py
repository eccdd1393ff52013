"""Issue 9: a backup never says ``ok`` about a SQLite database it cannot restore.

Real writer processes commit 50-row transactions in a tight loop (rollback journal and WAL)
while ``shadowvault backup`` runs under each of the four open-file strategies; every snapshot
is restored with ``shadowvault restore`` and with the real ``restic restore``, and the restored
database must pass ``integrity_check`` and hold only complete transactions. The number of
backups per strategy and mode is ``ROUNDS`` (3); the test marked ``slow`` runs 10
(``python3 -m pytest -m slow tests/e2e/test_e2e_sqlite.py``).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlitefixtures import (
    EXCLUSIVE_HOLDER,
    HOLD_OPEN,
    WRITER,
    check_complete,
    json_lines,
    make_database,
    restored,
    running,
    stored,
    stored_outcomes,
    stored_paths,
    summary,
)

from conftest import require_binary, require_root
from treeutil import env, restic, sv

ROUNDS = 3
STRATEGIES = ("try-deny-write", "deny-write", "prevent-write", "allow-write")
MODES = ("DELETE", "WAL")
COMPANIONS = ("-journal", "-wal", "-shm")


@pytest.fixture(autouse=True)
def own_state(tmp_path: Path) -> Iterator[Path]:
    """Private state dir per test: the activity log and database copies we look at are ours."""
    with pytest.MonkeyPatch.context() as mp:
        for name in ("XDG_STATE_HOME", "XDG_DATA_HOME", "XDG_CONFIG_HOME"):
            mp.setenv(name, str(tmp_path / name.lower()))
        yield tmp_path / "xdg_state_home"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    require_binary("restic")
    path = tmp_path / "repo"
    sv("init", repo=path)
    return path


@pytest.fixture
def src(tmp_path: Path) -> Path:
    d = tmp_path / "src"
    d.mkdir()
    (d / "notes.txt").write_text("an ordinary file next to the database\n")
    return d


def backup(repo: Path, src: Path, strategy: str, *flags: str) -> subprocess.CompletedProcess[str]:
    return sv(
        "backup", "--json", "--open-files", strategy, "--retry-times", "3", "--retry-interval", "1",
        *flags, str(src), repo=repo, check=False,
    )  # fmt: skip


def restore_both(repo: Path, snapshot: str, target: Path) -> tuple[Path, Path]:
    """Restore ``snapshot`` with shadowvault and with restic; the two restore roots."""
    return restore_with("sv", repo, snapshot, target / "sv"), restore_with(
        "restic", repo, snapshot, target / "restic"
    )


def restore_with(tool: str, repo: Path, snapshot: str, target: Path) -> Path:
    """Restore ``snapshot`` into ``target`` with ``shadowvault restore`` or ``restic restore``."""
    if tool == "sv":
        sv("restore", snapshot, "--target", str(target), repo=repo)
    else:
        restic("restore", snapshot, "--target", str(target), repo=repo)
    return target


def live_rounds(repo: Path, src: Path, strategies: tuple[str, ...], rounds: int, tmp_path: Path) -> None:
    """``rounds`` backups of a database under a live writer, round n with ``strategies[n % len]``:
    every one exits 0, stores the database (copied through SQLite, named writer) without
    companions, and restores complete (restored by shadowvault and restic in turn, both for the
    last)."""
    db = src / "app.db"
    last_seen: list[int] = []
    for n in range(rounds):
        p = backup(repo, src, strategies[n % len(strategies)])
        assert p.returncode == 0, p.stdout + p.stderr
        sid = str(summary(p.stdout)["snapshot_id"])
        paths, outcomes = stored(repo, sid)
        outcome = outcomes[str(db)]
        assert outcome["class"] == "ok" and outcome["reason"] == "sqlite-online-backup", outcome
        assert outcome["writers"], f"the active writer is not named: {outcome}"
        assert str(db) in paths and str(src / "notes.txt") in paths
        assert not any(str(db) + c in paths for c in COMPANIONS), sorted(paths)
        tools = ("sv", "restic") if n == rounds - 1 else (("sv", "restic")[n % 2],)
        for tool in tools:
            root = restore_with(tool, repo, sid, tmp_path / f"r{n}-{tool}")
            assert not any(restored(root, Path(str(db) + c)).exists() for c in COMPANIONS)
            last_seen.append(check_complete(restored(root, db)))
    assert len(set(last_seen)) > 1, f"the writer did not commit between the backups: {last_seen}"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_live_database_is_always_a_complete_committed_state(
    mode: str, strategy: str, repo: Path, src: Path, tmp_path: Path
) -> None:
    with running(WRITER, str(src / "app.db"), mode):
        live_rounds(repo, src, (strategy,), ROUNDS, tmp_path)
    restic("check", repo=repo)


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
def test_live_database_twelve_backups_in_a_row(mode: str, repo: Path, src: Path, tmp_path: Path) -> None:
    """A longer run against one writer: twelve backups into one repository, every strategy three
    times in turn (each strategy's first rounds are the test above; this one is about a repository
    and a writer that go on)."""
    with running(WRITER, str(src / "app.db"), mode):
        live_rounds(repo, src, STRATEGIES, 12, tmp_path)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_per_file_reads_of_a_group_are_never_ok_when_torn(
    mode: str, strategy: str, repo: Path, src: Path, tmp_path: Path
) -> None:
    """``sqlite_aware`` off: the old per-file reads. Whatever they give, a backup that exits 0 (or
    calls the group ok) restores a database that opens complete, with its journal or WAL."""
    db = src / "app.db"
    with running(WRITER, str(db), mode):
        for n in range(ROUNDS):
            p = backup(repo, src, strategy, "--no-sqlite-aware")
            assert p.returncode in (0, 3, 4), p.stdout + p.stderr
            sid = str(summary(p.stdout)["snapshot_id"])
            outcomes = stored_outcomes(repo, sid)
            group = [str(db) + c for c in ("", *COMPANIONS) if str(db) + c in stored_paths(repo, sid)]
            classes = {outcomes.get(m, {"class": "ok"})["class"] for m in group}
            assert len(classes) <= 1, f"a group judged file by file: {outcomes}"
            if p.returncode == 0 or classes == {"ok"}:
                for root in restore_both(repo, sid, tmp_path / f"r{n}"):
                    check_complete(restored(root, db))
            else:
                assert classes <= {"suspect", "failed"} or str(db) not in group, outcomes


@pytest.mark.parametrize("mode", MODES)
def test_idle_database_is_stored_byte_identical_and_dedups(
    mode: str, repo: Path, src: Path, tmp_path: Path
) -> None:
    db = src / "app.db"
    stop = tmp_path / "stop"
    with running(WRITER, str(db), mode, str(stop)) as writer:
        backup(repo, src, "try-deny-write")
        stop.touch()  # the application closes its database and exits: nothing is in use any more
        assert writer.wait(timeout=60) == 0
    assert not any(Path(str(db) + c).exists() for c in COMPANIONS)
    first = backup(repo, src, "try-deny-write", "--force")
    assert first.returncode == 0, first.stdout + first.stderr
    sid = str(summary(first.stdout)["snapshot_id"])
    assert str(db) not in stored_outcomes(repo, sid), "an idle database took the SQLite path"
    for root in restore_both(repo, sid, tmp_path / "r"):
        assert restored(root, db).read_bytes() == db.read_bytes()
    again = backup(repo, src, "try-deny-write", "--force")
    assert again.returncode == 0
    assert summary(again.stdout)["data_blobs_added"] == 0, "the unchanged database did not dedup"


def test_database_locked_past_the_retries_fails_naming_the_writer(
    repo: Path, src: Path, tmp_path: Path
) -> None:
    db = src / "app.db"
    with running(EXCLUSIVE_HOLDER, str(db)) as holder:
        flags = ("--retry-times", "1", "--retry-interval", "0")
        p = sv("backup", "--json", *flags, str(src), repo=repo, check=False)
    assert p.returncode == 3, p.stdout + p.stderr
    assert "Traceback" not in p.stderr
    done = {d["path"]: d for d in json_lines(p.stdout) if d.get("message_type") == "file"}
    failed = done[str(db)]
    assert failed["class"] == "failed" and failed["reason"] == "database-busy", failed
    assert failed["attempts"] == 2
    assert {"pid": holder.pid, "command": "python3"} in failed["writers"] or any(
        w["pid"] == holder.pid for w in failed["writers"]
    ), failed
    assert f"pid {holder.pid}" in failed["message"]
    sid = str(summary(p.stdout)["snapshot_id"])
    paths = stored_paths(repo, sid)
    assert str(src / "notes.txt") in paths and str(db) not in paths
    assert not any(str(db) + c in paths for c in COMPANIONS)
    report = sv("report", sid, repo=repo).stdout
    assert "database-busy" in report or "locked" in report, report


def test_report_ls_and_activity_say_sqlite_online_backup(repo: Path, src: Path) -> None:
    db = src / "app.db"
    with running(WRITER, str(db), "WAL") as writer:
        p = backup(repo, src, "try-deny-write")
    assert p.returncode == 0, p.stdout + p.stderr
    sid = str(summary(p.stdout)["snapshot_id"])
    line = next(ln for ln in sv("ls", "--long", sid, repo=repo).stdout.splitlines() if ln.endswith("]"))
    assert str(db) in line and "[ok (sqlite online backup" in line and f"pid {writer.pid}" in line, line
    report = sv("report", sid, repo=repo).stdout
    assert "sqlite online backup" in report and f"pid {writer.pid}" in report, report
    session = json_lines(p.stdout)[0]["session_id"]
    logged = sv("report", str(session), repo=repo).stdout
    assert "sqlite online backup" in logged, logged


# ---- edge cases: clear outcomes, no traceback, nothing else lost -------------------------------


def test_file_with_only_the_header_is_a_plain_file(repo: Path, src: Path) -> None:
    fake = src / "fake.db"
    fake.write_bytes(b"SQLite format 3\x00" + os.urandom(5000))
    p = backup(repo, src, "try-deny-write")
    assert p.returncode == 0, p.stdout + p.stderr  # idle: read as a file, nothing asks SQLite
    with running(HOLD_OPEN, str(fake)) as holder:
        p = backup(repo, src, "try-deny-write", "--force")
    assert "Traceback" not in p.stderr
    assert p.returncode == 4, p.stdout + p.stderr
    done = {d["path"]: d for d in json_lines(p.stdout) if d.get("message_type") == "file"}
    assert done[str(fake)]["class"] == "suspect" and any(
        w["pid"] == holder.pid for w in done[str(fake)]["writers"]
    )
    warned = [d["message"] for d in json_lines(p.stdout) if d.get("message_type") == "warning"]
    assert any("SQLite cannot read it" in m and str(fake) in m for m in warned), warned
    assert str(src / "notes.txt") in stored_paths(repo, str(summary(p.stdout)["snapshot_id"]))


def test_zero_length_wal_is_copied_through_sqlite(repo: Path, src: Path, tmp_path: Path) -> None:
    db = src / "app.db"
    make_database(db, "WAL")
    Path(str(db) + "-wal").write_bytes(b"")
    p = backup(repo, src, "deny-write")
    assert p.returncode == 0, p.stdout + p.stderr
    sid = str(summary(p.stdout)["snapshot_id"])
    assert stored_outcomes(repo, sid)[str(db)]["reason"] == "sqlite-online-backup"
    assert str(db) + "-wal" not in stored_paths(repo, sid)
    for root in restore_both(repo, sid, tmp_path / "r"):
        check_complete(restored(root, db))


def test_database_in_a_read_only_directory(repo: Path, src: Path, tmp_path: Path) -> None:
    """A read-only bind mount of a directory whose WAL database a writer is using elsewhere."""
    require_root()
    live = tmp_path / "live"
    live.mkdir()
    ro = src / "ro"
    ro.mkdir()
    subprocess.run(["mount", "--bind", str(live), str(ro)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(ro)], check=True)
        with running(WRITER, str(live / "app.db"), "WAL"):
            p = backup(repo, src, "try-deny-write")
        assert "Traceback" not in p.stderr, p.stderr
        assert p.returncode in (0, 3), p.stdout + p.stderr
        sid = str(summary(p.stdout)["snapshot_id"])
        outcome = stored_outcomes(repo, sid)[str(ro / "app.db")]
        assert outcome["reason"] in ("sqlite-online-backup", "database-error"), outcome
        assert str(src / "notes.txt") in stored_paths(repo, sid)
        if outcome["class"] == "ok":
            check_complete(restored(restore_both(repo, sid, tmp_path / "r")[1], ro / "app.db"))
        else:
            assert outcome["message"], outcome
    finally:
        subprocess.run(["umount", str(ro)], check=False)


UNPRIVILEGED = (
    "import os, sys\n"
    "from shadowvault.cli import main\n"
    "import shadowvault.config, shadowvault.cli.commands.init, shadowvault.cli.commands.backup\n"
    "import encodings.ascii, encodings.latin_1, encodings.utf_8, encodings.idna\n"
    "os.setgroups([]); os.setgid(65534); os.setuid(65534)\n"
    "assert main(['init', '--repo', sys.argv[1]]) == 0\n"
    "raise SystemExit(main(['backup', '--json', '--repo', sys.argv[1], sys.argv[2]]))\n"
)


@pytest.mark.parametrize("mode", MODES)
def test_unprivileged_run_on_a_root_owned_database(mode: str, tmp_path: Path) -> None:
    require_root()
    src = tmp_path / "rootdb"
    src.mkdir()
    (src / "notes.txt").write_text("root's notes\n")
    for d in [tmp_path, *tmp_path.parents]:
        if d == Path("/tmp"):
            break
        os.chmod(d, 0o755)
    home = tmp_path / "nobody-home"
    home.mkdir()
    os.chown(home, 65534, 65534)
    db = src / "app.db"
    with running(WRITER, str(db), mode):
        p = subprocess.run(
            [sys.executable, "-c", UNPRIVILEGED, str(home / "repo"), str(src)],
            capture_output=True, text=True, timeout=300,
            env=env(None, HOME=str(home), XDG_STATE_HOME=str(home / "state")),
        )  # fmt: skip
    assert "Traceback" not in p.stderr, p.stderr
    assert p.returncode in (0, 3), p.stdout + p.stderr
    done = {d["path"]: d for d in json_lines(p.stdout) if d.get("message_type") == "file"}
    assert str(src / "notes.txt") not in done and summary(p.stdout)["files_ok"] >= 1, p.stdout
    outcome = done.get(str(db), {"class": "ok"})
    assert outcome["class"] in ("ok", "failed"), outcome
    if outcome["class"] == "failed":
        assert outcome["reason"] in ("database-error", "database-busy", "permission-denied"), outcome
        assert p.returncode == 3
    for c in COMPANIONS:
        assert str(db) + c not in done, f"a companion was read on its own: {done[str(db) + c]}"


def test_restored_copy_is_a_database_sqlite_opens_without_companions(
    repo: Path, src: Path, tmp_path: Path
) -> None:
    """The copy is a self-contained database: opened read-write it needs no journal or WAL."""
    db = src / "app.db"
    with running(WRITER, str(db), "WAL"):
        p = backup(repo, src, "allow-write")
    assert p.returncode == 0, p.stdout + p.stderr
    target = tmp_path / "r"
    sv("restore", "latest", "--target", str(target), repo=repo)
    con = sqlite3.connect(restored(target, db))
    try:
        assert con.execute("PRAGMA quick_check").fetchone() == ("ok",)
        assert json.dumps(con.execute("SELECT count(*) FROM t").fetchone())
    finally:
        con.close()


# ---- configuration: a sqlite set, and sqlite_aware = false --------------------------------------


def corrupt_page(db: Path) -> None:
    """Overwrite one b-tree page in the middle: the online backup copies it, quick_check sees it."""
    con = sqlite3.connect(db)
    size, count = (
        con.execute("PRAGMA page_size").fetchone()[0],
        con.execute("PRAGMA page_count").fetchone()[0],
    )
    con.close()
    with open(db, "r+b") as f:
        f.seek((count // 2) * size)
        f.write(b"\x0d" + os.urandom(size - 1))


def test_sqlite_set_copies_listed_databases_and_quick_checks_them(
    repo: Path, src: Path, tmp_path: Path
) -> None:
    good, broken, idle = src / "good.db", src / "broken.db", src / "sub" / "idle.db"
    idle.parent.mkdir()
    for db in (good, idle):
        make_database(db, "DELETE")
    con = sqlite3.connect(broken)
    con.execute("CREATE TABLE k(id INTEGER PRIMARY KEY, v TEXT)")
    con.execute("CREATE INDEX k_v ON k(v)")
    con.executemany("INSERT INTO k(v) VALUES (hex(randomblob(20)))", [()] * 3000)
    con.commit()
    con.close()
    corrupt_page(broken)
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        f'[repository]\npath = "{repo}"\n\n'
        f'[sets.dbs]\ntype = "sqlite"\ndatabases = ["{src}/*.db", "{src}/**/idle.db"]\nretry_times = 0\n'
    )
    with running(WRITER, str(good), "WAL"):
        p = sv("backup", "--json", "--set", "dbs", "--config", str(cfg), repo=repo, check=False)
    assert "Traceback" not in p.stderr
    assert p.returncode == 3, p.stdout + p.stderr
    done = {d["path"]: d for d in json_lines(p.stdout) if d.get("message_type") == "file"}
    assert done[str(good)]["reason"] == "sqlite-online-backup" and done[str(good)]["class"] == "ok"
    assert done[str(idle)]["reason"] == "sqlite-online-backup"  # idle too: a sqlite set always copies
    # A damaged database is failed, whether SQLite notices while copying or quick_check finds it.
    assert done[str(broken)]["class"] == "failed" and done[str(broken)]["reason"] == "database-error"
    assert "quick_check" in done[str(broken)]["message"] or "malformed" in done[str(broken)]["message"]
    assert str(src / "notes.txt") not in done  # only the listed databases
    sid = str(summary(p.stdout)["snapshot_id"])
    paths = stored_paths(repo, sid)
    assert str(broken) not in paths and not any(p.endswith(("-wal", "-shm")) for p in paths)
    for root in restore_both(repo, sid, tmp_path / "r"):
        check_complete(restored(root, good))
        check_complete(restored(root, idle))


def test_sqlite_set_with_a_glob_that_matches_nothing_is_one_line(repo: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        f'[repository]\npath = "{repo}"\n\n[sets.dbs]\ntype = "sqlite"\ndatabases = ["{tmp_path}/no/*.db"]\n'
    )
    p = sv("backup", "--set", "dbs", "--config", str(cfg), repo=repo, check=False)
    assert p.returncode == 2 and "matches no file" in p.stderr and "Traceback" not in p.stderr, p.stderr


def test_sqlite_aware_false_in_the_config_reads_the_files(repo: Path, src: Path, tmp_path: Path) -> None:
    db = src / "app.db"
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        f'[repository]\npath = "{repo}"\n\n[sets.raw]\nsources = ["{src}"]\nsqlite_aware = false\n'
    )
    shown = json.loads(sv("sets", "show", "raw", "--json", "--config", str(cfg)).stdout)
    assert "sqlite_aware" in json.dumps(shown)
    with running(WRITER, str(db), "WAL"):
        p = sv("backup", "--json", "--set", "raw", "--config", str(cfg), repo=repo, check=False)
    assert p.returncode in (3, 4), p.stdout + p.stderr
    done = {d["path"]: d for d in json_lines(p.stdout) if d.get("message_type") == "file"}
    members = [str(db) + c for c in ("", "-wal", "-shm") if str(db) + c in done]
    assert str(db) in members and str(db) + "-wal" in members, sorted(done)
    assert all(done[m]["class"] != "ok" for m in members), {m: done[m] for m in members}
    assert all(done[m]["reason"] == "group-changed" for m in members if done[m]["class"] == "suspect")
