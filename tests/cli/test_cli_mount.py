"""Issue 16: `mount` (FUSE, read-only): the mounted snapshot equals its restore; reading from the
mount while another client backs up works; unmounting ends the command cleanly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import require, require_binary
from treeutil import describe, env, make_full_tree, restic, sv


def _tree(root: Path) -> dict[bytes, dict[str, object]]:
    # FUSE numbers inodes per path, so hard links are not recognisable by inode in the mount
    # (their link count is shown); everything else must equal the restore.
    return {k: {f: v for f, v in d.items() if f != "linked_to"} for k, d in describe(root).items()}


def _mounted(path: Path) -> bool:
    return any(line.split()[1] == str(path) for line in Path("/proc/mounts").read_text().splitlines())


Mounted = tuple[Path, Path, Path, "subprocess.Popen[str]"]


@pytest.fixture
def mounted(tmp_path: Path) -> Iterator[Mounted]:
    require(os.path.exists("/dev/fuse"), "needs /dev/fuse")
    require_binary("fusermount3")
    repo, src, mnt = tmp_path / "repo", tmp_path / "src", tmp_path / "mnt"
    make_full_tree(src, devices=os.geteuid() == 0)
    mnt.mkdir()
    sv("init", repo=repo)
    sv("backup", str(src), "--tag", "t1", repo=repo)
    proc = subprocess.Popen(
        [sys.executable, "-m", "shadowvault", "mount", str(mnt)],
        env=env(repo),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not (mnt / "ids").exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "mount did not come up"
        time.sleep(0.2)
    try:
        yield repo, src, mnt, proc
    finally:
        if _mounted(mnt):
            subprocess.run(["fusermount3", "-u", str(mnt)], check=False)
        proc.communicate(timeout=60)  # also closes its pipes


def test_mounted_snapshot_equals_its_restore(mounted: Mounted, tmp_path: Path) -> None:
    repo, src, mnt, proc = mounted
    sid = json.loads(sv("snapshots", "--json", repo=repo).stdout)[0]["id"]
    target = tmp_path / "restored"
    sv("restore", sid, "--target", str(target), repo=repo)
    rel = str(src).lstrip("/")
    assert sorted(os.listdir(mnt)) == ["hosts", "ids", "snapshots", "tags"]
    assert os.listdir(mnt / "ids") == [sid[:8]]
    assert _tree(mnt / "ids" / sid[:8] / rel) == _tree(target / rel)
    assert os.readlink(mnt / "snapshots" / "latest") in os.listdir(mnt / "snapshots")
    assert _tree(mnt / "snapshots" / "latest" / rel) == _tree(target / rel)
    assert os.listdir(mnt / "tags") == ["t1"]
    with pytest.raises(OSError):
        (mnt / "ids" / sid[:8] / rel / "plain.txt").write_text("no")

    # Another client backs up while a large file is read from the mount.
    writer = subprocess.Popen(
        [sys.executable, "-m", "shadowvault", "backup", str(src)], env=env(repo), stdout=subprocess.DEVNULL
    )
    data = (mnt / "ids" / sid[:8] / rel / "dir" / "sub" / "deep.bin").read_bytes()
    assert writer.wait(timeout=300) == 0
    assert data == (src / "dir" / "sub" / "deep.bin").read_bytes()

    subprocess.run(["fusermount3", "-u", str(mnt)], check=True)
    assert proc.wait(timeout=60) == 0
    assert not _mounted(mnt)


def test_snapshots_made_after_mounting_appear(mounted: Mounted) -> None:
    repo, src, mnt, proc = mounted
    first = json.loads(sv("snapshots", "--json", repo=repo).stdout)[0]["id"]
    rel = str(src).lstrip("/")
    before = set(os.listdir(mnt / "snapshots"))
    (src / "added-later.txt").write_bytes(b"made after the mount\n" * 1000)
    sv("backup", str(src), "--tag", "t2", repo=repo)
    second = next(
        s["id"] for s in json.loads(sv("snapshots", "--json", repo=repo).stdout) if s["id"] != first
    )
    # Listing ids/ re-reads the snapshot list at most every few seconds: poll for a while.
    deadline = time.monotonic() + 60
    while second[:8] not in os.listdir(mnt / "ids"):
        assert time.monotonic() < deadline, "the new snapshot never appeared under ids/"
        time.sleep(0.5)
    assert sorted(os.listdir(mnt / "ids")) == sorted([first[:8], second[:8]])
    new_times = set(os.listdir(mnt / "snapshots")) - before
    assert len(new_times) == 1, new_times
    assert os.readlink(mnt / "snapshots" / "latest") == new_times.pop()
    assert sorted(os.listdir(mnt / "tags")) == ["t1", "t2"]
    for base in (mnt / "ids" / second[:8], mnt / "snapshots" / "latest", mnt / "tags" / "t2"):
        if base.name == "t2":
            base = base / os.listdir(base)[0]
        assert (base / rel / "added-later.txt").read_bytes() == b"made after the mount\n" * 1000
        assert (base / rel / "dir" / "sub" / "deep.bin").read_bytes() == (
            src / "dir" / "sub" / "deep.bin"
        ).read_bytes()
    # The first snapshot does not have the new file.
    assert not (mnt / "ids" / first[:8] / rel / "added-later.txt").exists()

    # A snapshot forgotten meanwhile disappears the same way (restic's forget on the same repository).
    restic("forget", first, repo=repo)
    deadline = time.monotonic() + 60
    while first[:8] in os.listdir(mnt / "ids"):
        assert time.monotonic() < deadline, "the forgotten snapshot stayed under ids/"
        time.sleep(0.5)
    assert os.listdir(mnt / "ids") == [second[:8]]
    assert os.listdir(mnt / "tags") == ["t2"]
    subprocess.run(["fusermount3", "-u", str(mnt)], check=True)
    assert proc.wait(timeout=60) == 0
