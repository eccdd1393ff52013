"""Issue 11 (2): backups started a fraction of a second apart into one repository never trip each other.

Each round changes the source a little, then starts two backups 0–300 ms apart. The first one
finishes while the second is between reading the index and choosing its parent, so the second
sees a snapshot whose index it has not read: it must re-read the index, not fail with "tree blob
… is not in the index".
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import require_binary
from shadowvault.repo import LocalBackend, Repository
from treeutil import PASSWORD, describe, env, restic, sv

ROUNDS = 10
FILES = 8  # of 1 MiB


def _launch(repo: Path, src: Path, state: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "shadowvault", "backup", "--json", str(src)],
        env=env(repo, XDG_STATE_HOME=str(state)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _snapshot_of(p: subprocess.Popen[str]) -> str:
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0, f"exit {p.returncode}\n{out}\n{err}"
    summary = [json.loads(line) for line in out.splitlines() if '"summary"' in line][-1]
    return str(summary["snapshot_id"])


def _contents(repo: Path, snapshot_id: str) -> dict[str, tuple[str, int | None, list[bytes]]]:
    """Every path of a snapshot with its type, size and content blob ids."""
    r = Repository.open(LocalBackend(repo), PASSWORD)
    try:
        r.load_index()
        out: dict[str, tuple[str, int | None, list[bytes]]] = {}

        def walk(tree_id: bytes, prefix: str) -> None:
            for node in r.load_tree(tree_id).nodes:
                path = f"{prefix}/{node.name}"
                out[path] = (node.type, node.size, list(node.content or []))
                if node.subtree is not None:
                    walk(node.subtree, path)

        walk(r.load_snapshot(snapshot_id).tree, "")
        return out
    finally:
        r.close()


@pytest.mark.timeout(600)  # twenty backups; slow on a busy machine
def test_two_backups_started_apart_both_succeed_and_restore_identically(tmp_path: Path) -> None:
    require_binary("restic")
    repo, src, state = tmp_path / "repo", tmp_path / "src", tmp_path / "state"
    src.mkdir()
    rng = random.Random(11)
    for i in range(FILES):
        (src / f"file-{i:02d}.bin").write_bytes(rng.randbytes(1024 * 1024))
    (src / "log.txt").write_text("round 0\n")
    sv("init", repo=repo)
    sv("backup", str(src), repo=repo, env_extra={"XDG_STATE_HOME": str(state)})
    for n in range(1, ROUNDS + 1):
        # New content each round: the first backup writes new trees the second has not indexed.
        with open(src / "log.txt", "a") as f:
            f.write(f"round {n}\n")
        (src / f"file-{n % FILES:02d}.bin").write_bytes(rng.randbytes(1024 * 1024))
        expected = describe(src, times=False)
        first = _launch(repo, src, state)
        time.sleep(rng.uniform(0.0, 0.3))
        second = _launch(repo, src, state)
        snapshots = [_snapshot_of(first), _snapshot_of(second)]
        assert not list((repo / "locks").iterdir())
        # Same files, same content blobs (chunking is deterministic): they restore identically.
        assert _contents(repo, snapshots[0]) == _contents(repo, snapshots[1]), f"round {n}"
    # The last round's pair, restored for real and compared with the source.
    for sid in snapshots:
        target = tmp_path / f"restore-{sid[:8]}"
        sv("restore", sid, "--target", str(target), repo=repo)
        assert describe(target / str(src).lstrip("/"), times=False) == expected, sid
    restic("check", "--read-data", repo=repo)
    assert len(list((repo / "snapshots").iterdir())) == 1 + 2 * ROUNDS
