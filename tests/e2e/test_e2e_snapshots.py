"""Issue 6 end to end: snapshot backups on real loop-mounted btrfs and XFS, a tmpfs, real restic.

One btrfs, one XFS (reflink) and one tmpfs per module; every test works in its
own directory on them and checks that nothing of ours (snapshot subvolume,
reflink work dir, probe file, mount) is left once a session ends, however it
ended.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from snapfixtures import (
    OVERWRITER,
    SQLITE_NO_BUSY_TIMEOUT,
    SQLITE_WRITER,
    FailingSink,
    api_backup,
    backed_up,
    check_database,
    count_cmd,
    dead_pid,
    fresh_dir,
    last_session_warnings,
    leftovers,
    live_reasons,
    make_big_source,
    repo_snapshots,
    restored,
    signal_mid_backup,
    small_tree,
    stored_entries,
    summary,
    warnings,
    writer,
)

from conftest import require_binary
from loopfs import loop_fs, sh, tmpfs
from shadowvault.engine.backup import BackupOptions
from shadowvault.engine.events import FileDone, ListSink, Warning_
from shadowvault.errors import SnapshotError
from shadowvault.snapshots import SnapshotMode
from treeutil import env, restic, sv

pytestmark = [pytest.mark.root, pytest.mark.loopdev]

BUSY_SIZE = 4 * 1024 * 1024


@pytest.fixture(scope="module", autouse=True)
def own_state(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Per-module state/config dirs, so the activity log we read is ours alone."""
    base = tmp_path_factory.mktemp("xdg")
    with pytest.MonkeyPatch.context() as mp:
        for name in ("XDG_STATE_HOME", "XDG_DATA_HOME", "XDG_CONFIG_HOME"):
            mp.setenv(name, str(base / name.lower()))
        yield base


@pytest.fixture(scope="module")
def btrfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A btrfs mount whose subvolume ``vol`` holds the sources."""
    require_binary("btrfs")
    with loop_fs(tmp_path_factory.mktemp("btrfs"), "btrfs", size="700M") as mnt:
        sh("btrfs", "subvolume", "create", str(mnt / "vol"))
        yield mnt


@pytest.fixture(scope="module")
def xfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """An XFS mount with reflinks (no volume snapshot provider handles it: reflink does)."""
    with loop_fs(tmp_path_factory.mktemp("xfs"), "xfs", size="400M", mkfs_args=["-m", "reflink=1"]) as mnt:
        yield mnt


@pytest.fixture(scope="module")
def ram(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A tmpfs mount: no provider can snapshot it."""
    with tmpfs(tmp_path_factory.mktemp("tmpfs")) as mnt:
        yield mnt


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A fresh repository (on the root file system, outside every source)."""
    require_binary("restic")
    path = tmp_path / "repo"
    sv("init", repo=path)
    return path


def snapshot_rounds(src: Path, repo: Path, runs: int, left: Callable[[], list[str]]) -> list[str]:
    """``runs`` backups with snapshot=auto: each exits 0, every file read is ok from a snapshot (no
    live reads), nothing is left behind; returns the snapshot ids."""
    ids: list[str] = []
    for _ in range(runs):
        p = sv("backup", "--snapshot", "auto", "--json", str(src), repo=repo, check=False)
        assert p.returncode == 0, p.stdout + p.stderr
        s = summary(p.stdout)
        assert s["files_suspect"] == 0 and s["files_failed"] == 0, p.stdout
        assert s["files_read"] >= 1 and s["files_ok"] == s["files_read"], p.stdout
        assert live_reasons(warnings(p.stdout)) == [], p.stdout
        assert left() == []
        ids.append(str(s["snapshot_id"]))
    return ids


# ---- 1. SQLite on btrfs ------------------------------------------------------------------------


@pytest.mark.parametrize("journal", ["DELETE", "WAL"])
def test_sqlite_under_a_writer_on_btrfs_restores_intact_five_times(
    journal: str, btrfs: Path, repo: Path, tmp_path: Path
) -> None:
    src = fresh_dir(btrfs / "vol", f"sqlite-{journal}")
    db = src / "app.db"
    runs = 5 if journal == "DELETE" else 3  # WAL: fewer runs keep the module fast
    with writer(SQLITE_WRITER, str(db), journal):
        ids = snapshot_rounds(src, repo, runs, lambda: leftovers(btrfs, btrfs / "vol", btrfs=True))
    listed = [json.loads(line) for line in sv("ls", ids[-1], "--json", repo=repo).stdout.splitlines()]
    paths = {str(entry.get("path")) for entry in listed}
    assert str(db) in paths and not any(".shadowvault" in p for p in paths), sorted(paths)
    seqs: list[int] = []
    for n, sid in enumerate(ids):
        target = tmp_path / f"restore-{n}"
        if n == 0:
            restic("restore", sid, "--target", str(target), repo=repo)
        else:
            sv("restore", sid, "--target", str(target), repo=repo)
        # Recorded under the original path, never the snapshot's.
        seq, rows = check_database(restored(target, db))
        assert rows > 0
        seqs.append(seq)
    assert seqs == sorted(seqs) and len(set(seqs)) == runs, f"the writer did not move between backups: {seqs}"
    restic("check", repo=repo)


# ---- 2. SQLite and a rewritten file on XFS (reflink) -------------------------------------------


@pytest.mark.parametrize("journal", ["DELETE", "WAL"])
def test_sqlite_under_a_writer_on_xfs_reflink_restores_intact(
    journal: str, xfs: Path, repo: Path, tmp_path: Path
) -> None:
    src = fresh_dir(xfs, f"sqlite-{journal}")
    db = src / "app.db"
    runs = 5 if journal == "DELETE" else 3  # WAL: fewer runs keep the module fast
    with writer(SQLITE_WRITER, str(db), journal):
        ids = snapshot_rounds(src, repo, runs, lambda: leftovers(xfs, src, btrfs=False))
    for n, sid in enumerate(ids):
        target = tmp_path / f"restore-{n}"
        if n == 0:
            restic("restore", sid, "--target", str(target), repo=repo)
        else:
            sv("restore", sid, "--target", str(target), repo=repo)
        check_database(restored(target, db))


@pytest.mark.xfail(
    strict=True,
    reason="engine behaviour: during a reflink backup a SQLite writer without a busy handler (the C"
    " library's default) gets hundreds of 'database is locked' errors (none with --snapshot off):"
    " reflink takes a whole-file OFD read lock + flock on the live app.db (snapshots/filelock.py,"
    " seen with strace); a lock-free clone of the directory's files in one batch gives none",
)
def test_a_reflink_backup_causes_no_errors_in_a_writer_without_busy_timeout(
    xfs: Path, repo: Path, tmp_path: Path
) -> None:
    src = fresh_dir(xfs, "sqlite-no-timeout")
    stop = tmp_path / "stop"
    proc = subprocess.Popen(
        [sys.executable, "-c", SQLITE_NO_BUSY_TIMEOUT, str(src / "app.db"), "DELETE", str(stop)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "running"
        for _ in range(3):
            p = sv("backup", "--snapshot", "auto", "--json", str(src), repo=repo, check=False)
            assert p.returncode == 0, p.stdout + p.stderr
        stop.touch()
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    commits, busy = (int(n) for n in out.split())
    assert commits > 0, err
    # Alone with the backup, the writer never meets a lock: every error is the backup's doing.
    assert busy == 0, f"{busy} SQLITE_BUSY errors in the application ({commits} commits)"


def test_file_rewritten_during_backups_on_xfs_is_captured_as_one_state(
    xfs: Path, repo: Path, tmp_path: Path
) -> None:
    src = fresh_dir(xfs, "busy")
    busy = src / "busy.bin"
    ids: list[str] = []
    with writer(OVERWRITER, str(busy), str(BUSY_SIZE)):
        # reflink clones count as snapshots: required is satisfied on XFS too.
        for mode in ("auto", "required", "auto"):
            p = sv("backup", "--snapshot", mode, "--json", str(src), repo=repo, check=False)
            assert p.returncode == 0, p.stdout + p.stderr
            s = summary(p.stdout)
            assert s["files_read"] == 1 and s["files_ok"] == 1, p.stdout
            assert live_reasons(warnings(p.stdout)) == [], p.stdout
            assert leftovers(xfs, src, btrfs=False) == []
            ids.append(str(s["snapshot_id"]))
        # Control: read live, the same file is not vouched for (the writer is seen).
        p = sv("backup", "--snapshot", "off", "--json", str(src), repo=repo, check=False)
        assert summary(p.stdout)["files_ok"] == 0, p.stdout
    seen: set[int] = set()
    for n, sid in enumerate(ids):
        target = tmp_path / f"restore-{n}"
        if n == 0:
            restic("restore", sid, "--target", str(target), repo=repo)
        else:
            sv("restore", sid, "--target", str(target), repo=repo)
        data = restored(target, busy).read_bytes()
        assert len(data) == BUSY_SIZE
        values = set(data)
        assert len(values) == 1, f"snapshot {n}: torn copy with byte values {sorted(values)[:10]}"
        seen |= values
    # Evidence that the file really changed under the backups (else the check above proves nothing).
    assert len(seen) > 1, seen


# ---- 3. tmpfs: required fails, auto reads live -------------------------------------------------


def test_required_on_tmpfs_fails_with_one_line_and_writes_no_snapshot(ram: Path, repo: Path) -> None:
    src = fresh_dir(ram, "required")
    (src / "a.txt").write_text("data\n")
    p = sv("backup", "--snapshot", "required", str(src), repo=repo, check=False)
    assert p.returncode == 1, p.stdout + p.stderr
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith("error: snapshot required but") and str(src) in lines[0], lines
    assert "tmpfs" in lines[0], lines
    assert "Traceback" not in p.stderr
    assert repo_snapshots(repo) == []
    assert leftovers(ram, src, btrfs=False) == []


def test_auto_on_tmpfs_reads_live_and_says_why(ram: Path, repo: Path, tmp_path: Path) -> None:
    src = fresh_dir(ram, "auto")
    (src / "a.txt").write_text("data\n")
    p = sv("backup", "--snapshot", "auto", "--json", str(src), repo=repo, check=False)
    assert p.returncode == 0, p.stdout + p.stderr
    s = summary(p.stdout)
    assert s["files_ok"] == 1 and s["files_failed"] == 0
    why = live_reasons(warnings(p.stdout))
    assert len(why) == 1 and str(src) in why[0] and "tmpfs" in why[0], p.stdout
    # The same reason reaches a person as a warning line on stderr.
    p = sv("backup", "--snapshot", "auto", str(src), repo=repo, check=False)
    assert p.returncode == 0, p.stdout + p.stderr
    assert any(
        line.startswith("warning: snapshot:") and "read live" in line for line in p.stderr.splitlines()
    )
    assert len(repo_snapshots(repo)) == 2
    # ... and the session log keeps it.
    assert live_reasons(last_session_warnings(repo)) == why
    target = tmp_path / "restore"
    sv("restore", "latest", "--target", str(target), repo=repo)
    assert restored(target, src / "a.txt").read_text() == "data\n"
    assert leftovers(ram, src, btrfs=False) == []


# ---- 4. nothing left behind after success, failure and signals ---------------------------------


def test_required_failure_after_a_snapshot_was_made_leaves_nothing(
    btrfs: Path, ram: Path, repo: Path
) -> None:
    on_btrfs = fresh_dir(btrfs / "vol", "req-mixed")
    (on_btrfs / "a.txt").write_text("on btrfs\n")
    on_tmpfs = fresh_dir(ram, "req-mixed")
    # The btrfs source gets its snapshot first; then the tmpfs source fails the set.
    p = sv("backup", "--snapshot", "required", str(on_btrfs), str(on_tmpfs), repo=repo, check=False)
    assert p.returncode == 1, p.stdout + p.stderr
    assert "snapshot required but" in p.stderr and str(on_tmpfs) in p.stderr, p.stderr
    assert repo_snapshots(repo) == []
    assert leftovers(btrfs, btrfs / "vol", btrfs=True) == []


@pytest.mark.parametrize("fs", ["btrfs", "xfs"])
def test_a_backup_failing_mid_run_leaves_nothing(
    fs: str, request: pytest.FixtureRequest, repo: Path, tmp_path: Path
) -> None:
    mnt: Path = request.getfixturevalue(fs)
    parent = mnt / "vol" if fs == "btrfs" else mnt
    src = fresh_dir(parent, "fails-mid-run")
    (src / "a.txt").write_text("a\n")
    (src / "b.txt").write_text("b\n")
    sink = FailingSink()
    with pytest.raises(RuntimeError, match="sink broke"):
        api_backup(repo, BackupOptions(sources=[str(src)], snapshot_mode=SnapshotMode.AUTO), sink)
    assert any(isinstance(e, FileDone) for e in sink.events)  # it failed after reading began
    assert leftovers(mnt, parent, src, btrfs=fs == "btrfs") == []
    assert repo_snapshots(repo) == []


def test_a_failing_pre_snapshot_under_required_fails_and_leaves_nothing(
    btrfs: Path, repo: Path, tmp_path: Path
) -> None:
    src = fresh_dir(btrfs / "vol", "pre-fails")
    (src / "a.txt").write_text("a\n")
    log = tmp_path / "log"
    options = BackupOptions(
        sources=[str(src)],
        snapshot_mode=SnapshotMode.REQUIRED,
        pre_snapshot=f"echo pre >> {log}; echo quiesce failed >&2; exit 3",
        post_snapshot=f"echo post >> {log}",
    )
    sink = ListSink()
    with pytest.raises(SnapshotError, match="pre_snapshot command failed: quiesce failed"):
        api_backup(repo, options, sink)
    # post_snapshot runs although the snapshot failed.
    assert log.read_text().split() == ["pre", "post"]
    assert leftovers(btrfs, btrfs / "vol", src, btrfs=True) == []
    assert repo_snapshots(repo) == []


@pytest.fixture(scope="module")
def big_btrfs(btrfs: Path) -> Path:
    """A big source on the btrfs subvolume."""
    return make_big_source(btrfs / "vol" / "big")


@pytest.fixture(scope="module")
def big_xfs(xfs: Path) -> Path:
    """A big source on XFS (read through reflink clones)."""
    return make_big_source(xfs / "big")


@pytest.mark.parametrize(
    ("fs", "sig"), [("btrfs", signal.SIGINT), ("btrfs", signal.SIGTERM), ("xfs", signal.SIGINT)]
)
def test_a_signal_mid_backup_leaves_nothing(
    fs: str, sig: signal.Signals, request: pytest.FixtureRequest, repo: Path
) -> None:
    mnt: Path = request.getfixturevalue(fs)
    source: Path = request.getfixturevalue(f"big_{fs}")
    parent = mnt / "vol" if fs == "btrfs" else mnt
    code, err = signal_mid_backup(mnt, parent, source, repo, sig)
    assert code == 128 + sig, (code, err)
    assert "Traceback" not in err, err
    assert leftovers(mnt, parent, source, btrfs=fs == "btrfs") == []
    assert repo_snapshots(repo) == []


@pytest.mark.parametrize("fs", ["btrfs"])  # reflink's stale work dirs: see the stale test below
def test_what_a_killed_session_left_is_removed_by_the_next_one(
    fs: str, request: pytest.FixtureRequest, ram: Path, repo: Path
) -> None:
    mnt: Path = request.getfixturevalue(fs)
    source: Path = request.getfixturevalue(f"big_{fs}")
    parent = mnt / "vol" if fs == "btrfs" else mnt
    code, _ = signal_mid_backup(mnt, parent, source, repo, signal.SIGKILL)
    assert code == -signal.SIGKILL
    left = leftovers(mnt, parent, btrfs=fs == "btrfs")
    assert left, "kill -9 left nothing to clean up?"
    src = fresh_dir(ram, f"after-kill-{fs}")
    (src / "a.txt").write_text("a\n")
    p = sv("backup", "--snapshot", "auto", "--json", str(src), repo=repo, check=False)
    assert p.returncode == 0, p.stdout + p.stderr
    provider = "btrfs" if fs == "btrfs" else "reflink"
    said = [m for m in warnings(p.stdout) if "removed stale" in m and provider in m]
    assert said, (left, leftovers(mnt, parent, btrfs=fs == "btrfs"), p.stdout)
    assert leftovers(mnt, parent, source, btrfs=fs == "btrfs") == []


# ---- 5. stale snapshots of a crashed session ---------------------------------------------------


def test_stale_snapshots_of_a_dead_session_are_removed_and_reported(
    btrfs: Path, xfs: Path, ram: Path, repo: Path
) -> None:
    session = f"{dead_pid()}-0badf00d"
    stale_snap = btrfs / "vol" / f".shadowvault-snap-{session}"
    sh("btrfs", "subvolume", "snapshot", "-r", str(btrfs / "vol"), str(stale_snap))
    stale_work = xfs / f".shadowvault-reflink-{session}"
    stale_work.mkdir()
    (stale_work / "clone-x").write_bytes(b"half a clone")
    src = fresh_dir(ram, "stale")
    (src / "a.txt").write_text("a\n")
    # Any session that may snapshot cleans up, whichever source it backs up.
    p = sv("backup", "--snapshot", "auto", "--json", str(src), repo=repo, check=False)
    assert p.returncode == 0, p.stdout + p.stderr
    said = [m for m in warnings(p.stdout) if "stale" in m]
    assert any(stale_snap.name in m and "btrfs" in m for m in said), p.stdout
    assert any(stale_work.name in m and "reflink" in m for m in said), p.stdout
    assert not stale_snap.exists() and not stale_work.exists()
    assert [m for m in last_session_warnings(repo) if "stale" in m] == said
    assert leftovers(btrfs, btrfs / "vol", btrfs=True) == []
    assert leftovers(xfs, btrfs=False) == []


# ---- 6. pre_snapshot / post_snapshot -----------------------------------------------------------


def test_pre_and_post_snapshot_run_in_order_around_the_snapshot(
    btrfs: Path, repo: Path, tmp_path: Path
) -> None:
    src = fresh_dir(btrfs / "vol", "prepost")
    (src / "a.txt").write_text("a\n")
    log = tmp_path / "log"
    options = BackupOptions(
        sources=[str(src)],
        snapshot_mode=SnapshotMode.AUTO,
        pre_snapshot=count_cmd("pre", btrfs / "vol", log),
        post_snapshot=count_cmd("post", btrfs / "vol", log),
    )
    sink = ListSink()
    api_backup(repo, options, sink)
    # pre saw no snapshot yet, post saw exactly ours: they bracket its creation.
    assert log.read_text().splitlines() == ["pre 0", "post 1"]
    assert [e for e in sink.events if isinstance(e, Warning_)] == []
    assert leftovers(btrfs, btrfs / "vol", src, btrfs=True) == []
    assert len(repo_snapshots(repo)) == 1


def test_post_snapshot_runs_when_the_snapshot_cannot_be_made(btrfs: Path, repo: Path, tmp_path: Path) -> None:
    require_binary("chattr")
    src = fresh_dir(btrfs / "vol", "create-fails")
    (src / "a.txt").write_text("a\n")
    log = tmp_path / "log"
    # pre makes the subvolume and the mount root immutable: the btrfs snapshot and the
    # reflink probe/work dir both fail for real; post undoes it.
    roots = f"{btrfs / 'vol'} {btrfs}"
    options = BackupOptions(
        sources=[str(src)],
        snapshot_mode=SnapshotMode.AUTO,
        pre_snapshot=f"chattr +i {roots} && echo pre >> {log}",
        post_snapshot=f"chattr -i {roots}; echo post >> {log}",
    )
    sink = ListSink()
    try:
        api_backup(repo, options, sink)
    finally:
        subprocess.run(["chattr", "-i", str(btrfs / "vol"), str(btrfs)], check=False)
    assert log.read_text().split() == ["pre", "post"]
    said = [e.message for e in sink.events if isinstance(e, Warning_)]
    why = live_reasons(said)
    assert len(why) == 1 and "btrfs snapshot of" in why[0] and "failed" in why[0], said
    assert leftovers(btrfs, btrfs / "vol", src, btrfs=True) == []
    assert len(repo_snapshots(repo)) == 1  # auto: read live, the backup completes


def test_a_sets_pre_and_post_snapshot_from_the_config_file(btrfs: Path, repo: Path, tmp_path: Path) -> None:
    src = fresh_dir(btrfs / "vol", "set-prepost")
    (src / "a.txt").write_text("a\n")
    log = tmp_path / "log"
    cfg = tmp_path / "sv.toml"
    # json.dumps spells a valid TOML basic string for these ASCII commands.
    cfg.write_text(
        f'[sets.db]\nsources = [{json.dumps(str(src))}]\nsnapshot = "required"\n'
        f"pre_snapshot = {json.dumps(count_cmd('pre', btrfs / 'vol', log))}\n"
        f"post_snapshot = {json.dumps(count_cmd('post', btrfs / 'vol', log))}\n"
    )
    p = sv("backup", "--set", "db", "--json", "--config", str(cfg), repo=repo, check=False)
    assert p.returncode == 0, p.stdout + p.stderr
    s = summary(p.stdout)
    assert s["files_ok"] == 1 and s["files_read"] == 1, p.stdout
    assert log.read_text().splitlines() == ["pre 0", "post 1"]
    assert leftovers(btrfs, btrfs / "vol", src, btrfs=True) == []
    # A failing pre_snapshot under required: the set fails with one line, post still runs.
    log.unlink()
    cfg.write_text(cfg.read_text().replace("pre_snapshot = ", 'pre_snapshot = "exit 3"\n# was: '))
    p = sv("backup", "--set", "db", "--config", str(cfg), repo=repo, check=False)
    assert p.returncode == 1, p.stdout + p.stderr
    errors = [line for line in p.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "pre_snapshot command failed" in errors[0], p.stderr
    assert log.read_text().splitlines() == ["post 0"]
    assert len(repo_snapshots(repo)) == 1
    assert leftovers(btrfs, btrfs / "vol", src, btrfs=True) == []


# ---- the same tree with and without a snapshot ------------------------------------------------


def test_one_file_system_with_a_btrfs_snapshot_keeps_the_whole_source(btrfs: Path, repo: Path) -> None:
    src = btrfs / "vol" / "onefs"
    small_tree(src)
    live = backed_up(repo, src, "-x", "--snapshot", "off")
    assert live == {"sub", "sub/deep.txt", "top.txt"}
    assert backed_up(repo, src, "-x", "--snapshot", "auto") == live


def test_nested_subvolume_is_backed_up_under_auto(btrfs: Path, repo: Path) -> None:
    src = btrfs / "vol" / "nested"
    small_tree(src)
    sh("btrfs", "subvolume", "create", str(src / "inner"))
    (src / "inner" / "kept.txt").write_text("in a nested subvolume\n")
    try:
        live = backed_up(repo, src, "--snapshot", "off")
        assert "inner/kept.txt" in live
        assert backed_up(repo, src, "--snapshot", "auto") == live
    finally:
        sh("btrfs", "subvolume", "delete", str(src / "inner"))


def test_file_system_mounted_below_a_btrfs_source_is_backed_up_under_auto(btrfs: Path, repo: Path) -> None:
    src = btrfs / "vol" / "mounted-below"
    small_tree(src)
    (src / "mnt").mkdir()
    sh("mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(src / "mnt"))
    try:
        (src / "mnt" / "on-tmpfs.txt").write_text("on another file system\n")
        live = backed_up(repo, src, "--snapshot", "off")
        assert "mnt/on-tmpfs.txt" in live
        assert backed_up(repo, src, "--snapshot", "auto") == live
    finally:
        sh("umount", str(src / "mnt"))


def test_symlink_source_is_stored_the_same_with_a_snapshot(btrfs: Path, repo: Path) -> None:
    target = btrfs / "vol" / "link-target"
    small_tree(target)
    link = btrfs / "vol" / "link-to-tree"
    link.symlink_to(target)

    def stored(*flags: str) -> set[str]:
        p = sv("backup", "--json", *flags, str(link), repo=repo, check=False)
        assert p.returncode == 0, p.stdout + p.stderr
        stored = stored_entries(repo, str(summary(p.stdout)["snapshot_id"]))
        return {f"{path}:{kind}" for path, kind in stored.items() if path.startswith(str(link))}

    assert stored("--snapshot", "auto") == stored("--snapshot", "off")


def test_another_running_sessions_work_dir_is_not_backed_up(xfs: Path, repo: Path) -> None:
    src = xfs / "concurrent"
    small_tree(src)
    sleeper = subprocess.Popen(["sleep", "60"])  # a live pid: the work dir is not stale
    other = xfs / f".shadowvault-reflink-{sleeper.pid}-12345678"
    try:
        other.mkdir()
        (other / "clone-abc").write_text("another session's clone of some file\n")
        # The mount root is the source here, as in a whole-file-system backup.
        others = [f"--exclude={xfs / n}" for n in os.listdir(xfs) if n not in ("concurrent", other.name)]
        stored = backed_up(repo, xfs, "--snapshot", "auto", *others)
        assert "concurrent/top.txt" in stored
        assert not any(p.startswith(".shadowvault") for p in stored), sorted(stored)
    finally:
        sleeper.kill()
        sleeper.wait()
        subprocess.run(["rm", "-rf", str(other)], check=False)


def test_ctrl_c_during_pre_snapshot_still_runs_post_and_leaves_nothing(
    btrfs: Path, repo: Path, tmp_path: Path
) -> None:
    src = fresh_dir(btrfs / "vol", "pre-interrupted")
    (src / "a.txt").write_text("a\n")
    log = tmp_path / "log"
    cfg = tmp_path / "sv.toml"
    pre = f"echo pre >> {log}; exec sleep 30"  # exec: the interrupted command leaves no orphan
    cfg.write_text(
        f'[sets.slow]\nsources = [{json.dumps(str(src))}]\nsnapshot = "auto"\n'
        f"pre_snapshot = {json.dumps(pre)}\npost_snapshot = {json.dumps(f'echo post >> {log}')}\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "shadowvault", "backup", "--set", "slow", "--config", str(cfg)],
        env=env(repo), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not (log.exists() and log.read_text().strip()) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert proc.poll() is None and log.read_text().split() == ["pre"]
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, (proc.returncode, out, err)
    assert "Traceback" not in err, err
    assert log.read_text().split() == ["pre", "post"]
    assert leftovers(btrfs, btrfs / "vol", src, btrfs=True) == []
    assert repo_snapshots(repo) == []
