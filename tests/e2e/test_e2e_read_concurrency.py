"""``--read-concurrency N``: accepted, validated, and the same snapshot contents for any N."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

from treeutil import add_small_files, describe, make_full_tree, restic, sv


def _tree(src: Path) -> None:
    make_full_tree(src, devices=False)
    add_small_files(src, 8)
    (src / "big-a.bin").write_bytes(os.urandom(5 * 1024 * 1024))  # several chunks each
    (src / "big-b.bin").write_bytes(os.urandom(3 * 1024 * 1024 + 17))


def _source_tree(repo: Path, snapshot_id: str, src: Path) -> str:
    """The tree id of ``src`` in the snapshot (restic as the reader). Not the root's: the layout's
    intermediate directories (/tmp) carry their own, moving, modification times."""
    snaps = json.loads(restic("snapshots", "--json", repo=repo).stdout)
    tree = str(next(s["tree"] for s in snaps if s["id"] == snapshot_id))
    for part in src.parts[1:]:
        nodes = json.loads(restic("cat", "blob", tree, repo=repo).stdout)["nodes"]
        tree = next(n["subtree"] for n in nodes if n["name"] == part)
    return tree


def _backup(repo: Path, src: Path, n: str) -> str:
    out = sv("backup", "--json", "--force", "--read-concurrency", n, str(src), repo=repo).stdout
    summary = [json.loads(line) for line in out.splitlines() if '"summary"' in line][-1]
    assert summary["exit_code"] == 0 and summary["files_failed"] == 0, summary
    return str(summary["snapshot_id"])


def test_one_reader_and_four_readers_store_the_same_tree(tmp_path: Path) -> None:
    src, repo = tmp_path / "src", tmp_path / "repo"
    _tree(src)
    sv("init", repo=repo)
    one = _backup(repo, src, "1")
    four = _backup(repo, src, "4")
    assert _source_tree(repo, one, src) == _source_tree(repo, four, src)
    # And what four readers stored restores identically (restic as the judge).
    restic("restore", four, "--target", str(tmp_path / "r"), repo=repo)
    assert describe(tmp_path / "r" / src.relative_to("/")) == describe(src)


def test_a_read_concurrency_below_one_is_one_line_and_exit_2(tmp_path: Path) -> None:
    src, repo = tmp_path / "src", tmp_path / "repo"
    src.mkdir()
    (src / "a").write_text("a")
    sv("init", repo=repo)
    for bad in ("0", "-1"):
        p = sv("backup", "--read-concurrency", bad, str(src), repo=repo, check=False)
        assert p.returncode == 2, p.stderr
        lines = p.stderr.strip().splitlines()
        assert len(lines) == 1 and "read-concurrency" in lines[0] and "Traceback" not in p.stderr, p.stderr
    assert json.loads(sv("snapshots", "--json", repo=repo).stdout) == []  # nothing was backed up


def test_four_readers_give_the_walks_events_and_the_sqlite_handling_of_one(tmp_path: Path) -> None:
    """Through the Python API: the same FileDone order and outcomes, databases in use copied through
    SQLite (their companions not stored) and idle ones read raw, with 1 reader and with 4."""
    import shadowvault as api
    from shadowvault.engine.events import FileDone, ListSink
    from treeutil import PASSWORD

    src = tmp_path / "src"
    src.mkdir()
    for i in range(200):
        (src / f"f{i:03d}.txt").write_bytes(os.urandom(i * 13 % 4000))
    for name in ("a.db", "m.db", "z.db"):
        con = sqlite3.connect(src / name)
        con.execute("CREATE TABLE t(v)")
        con.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(500)])
        con.commit()
        con.close()
    (src / "m.db-wal").write_bytes(b"")  # a companion: m.db counts as in use
    repo = api.init_repository(str(tmp_path / "repo"), PASSWORD)
    runs: list[list[tuple[str, dict[str, object]]]] = []
    try:
        for n in (1, 4):
            sink = ListSink()
            opts = api.BackupOptions(sources=[str(src)], force=True, read_concurrency=n)
            result = api.backup(repo, opts, sink)
            assert result.exit_code == 0
            done = [(e.path, e.outcome.to_json()) for e in sink.events if isinstance(e, FileDone)]
            runs.append(done)
    finally:
        repo.close()
    # (Trees are compared in the test above: a copy through SQLite is not byte-identical twice.)
    one, four = runs
    assert one == four
    outcome = dict(one)
    assert outcome[str(src / "m.db")]["reason"] == "sqlite-online-backup"
    assert str(src / "m.db-wal") not in outcome
    assert outcome[str(src / "a.db")]["class"] == "ok" and outcome[str(src / "z.db")]["class"] == "ok"
