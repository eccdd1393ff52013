"""Shared helpers for the repository tests: fast KDF, fixture repos, restic runner, walkers."""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from shadowvault.repo import BlobType, Node, Repository, Snapshot, Tree

FAST_KDF = (1024, 8, 1)
"""Cheap scrypt parameters: restic reads whatever the key file says."""

PASSWORD = "correct horse battery staple"
FIXTURES = Path(__file__).parent / "fixtures"


def restic(
    repo: Path, *args: str, password: str = PASSWORD, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run the real restic binary against ``repo``."""
    env = dict(os.environ, RESTIC_PASSWORD=password, RESTIC_CACHE_DIR=str(repo.parent / ".restic-cache"))
    env.pop("RESTIC_PASSWORD_FILE", None)
    env.pop("RESTIC_REPOSITORY", None)
    return subprocess.run(
        ["restic", "-r", str(repo), "--no-cache", *args],
        env=env,
        capture_output=True,
        text=True,
        check=check,
        timeout=120,
    )


def unpack_fixture(dest: Path) -> tuple[Path, dict[str, Any]]:
    """Extract the restic-made fixture repository; returns (repo path, expectations)."""
    with tarfile.open(FIXTURES / "restic-0.14-repo.tar.gz") as tar:
        tar.extractall(dest, filter="data")
    expected = json.loads((FIXTURES / "restic-0.14-repo.json").read_text())
    return dest / "repo", expected


def walk(repo: Repository, tree_id: bytes, prefix: str = "") -> Iterator[tuple[str, Node]]:
    """Every (path, node) below a tree, depth first in tree order."""
    for node in repo.load_tree(tree_id).nodes:
        path = f"{prefix}/{node.name}"
        yield path, node
        if node.type == "dir" and node.subtree is not None:
            yield from walk(repo, node.subtree, path)


def write_sample(repo: Repository, files: dict[str, bytes], *, time_ns: int, tags: list[str]) -> str:
    """Store ``files`` (flat names → content, chunked at 4 KiB) under one dir; returns snapshot id."""
    nodes = []
    for name, content in sorted(files.items()):
        chunks = [content[i : i + 4096] for i in range(0, len(content), 4096)]
        ids = [repo.save_blob(BlobType.DATA, c)[0] for c in chunks]
        nodes.append(
            Node(
                name=name,
                type="file",
                mode=0o644,
                mtime=time_ns,
                atime=time_ns,
                ctime=time_ns,
                size=len(content),
                links=1,
                content=ids,
                extra={"shadowvault": {"class": "ok"}},
            )
        )
    sub = repo.save_tree(Tree(nodes))
    top = Node(name="data", type="dir", mode=0o755 | (1 << 31), mtime=time_ns, subtree=sub)
    root = repo.save_tree(Tree([top]))
    repo.flush()
    snap = Snapshot(
        time=time_ns, tree=root, paths=["/data"], hostname="testhost", username="tester", tags=tags
    )
    return repo.save_snapshot(snap)
