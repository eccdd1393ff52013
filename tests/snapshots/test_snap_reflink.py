"""reflink provider on real loop-mounted XFS (and btrfs): per-file point-in-time clones."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.snapshots.snap_helpers import dead_pid

from loopfs import loop_fs
from shadowvault.errors import SnapshotError
from shadowvault.snapshots import SnapshotMode, SnapshotSession, Unsupported, Volume
from shadowvault.snapshots.reflink import ReflinkProvider

pytestmark = [pytest.mark.root, pytest.mark.loopdev]

SIZE = 4 << 20


@pytest.fixture
def xfs(tmp_path: Path) -> Iterator[Path]:
    """An XFS mount with reflink enabled and a data directory."""
    with loop_fs(tmp_path, "xfs", mkfs_args=["-m", "reflink=1"]) as mnt:
        (mnt / "data").mkdir()
        yield mnt


def hidden(mnt: Path) -> list[str]:
    return sorted(p.name for p in mnt.iterdir() if p.name.startswith(".shadowvault"))


WRITER = textwrap.dedent(
    """
    import os, sys
    fd = os.open(sys.argv[1], os.O_WRONLY)
    print("writing", flush=True)
    i = 0
    while True:
        # One write call per state: the whole file gets one byte value.
        os.pwrite(fd, bytes([i % 250 + 1]) * {size}, 0)
        i += 1
    """
).format(size=SIZE)


def test_clone_of_a_file_under_constant_rewrite_holds_one_state(xfs: Path) -> None:
    target = xfs / "data" / "busy.bin"
    target.write_bytes(b"\x01" * SIZE)
    states: set[int] = set()
    with subprocess.Popen(
        [sys.executable, "-c", WRITER, str(target)], stdout=subprocess.PIPE, text=True
    ) as writer:
        try:
            assert writer.stdout is not None and writer.stdout.readline().strip() == "writing"
            with SnapshotSession(SnapshotMode.REQUIRED, [xfs / "data"], on_message=lambda m: None) as ss:
                view = ss.view(xfs / "data")
                assert view is not None and view.provider == "reflink"
                assert view.walk_root == xfs / "data"
                for _ in range(40):
                    with view.open_file(target) as clone:
                        data = clone.read_bytes()
                    assert len(data) == SIZE
                    values = set(data)
                    assert len(values) == 1, f"clone mixes {len(values)} states"
                    states |= values
                    assert not clone.exists()
        finally:
            writer.kill()
            writer.wait()
    # The writer really was changing the file while we cloned it.
    assert len(states) >= 2
    assert hidden(xfs) == []


def test_clone_keeps_content_after_the_file_changes_and_work_dir_goes(xfs: Path) -> None:
    target = xfs / "data" / "f.txt"
    target.write_text("before")
    with SnapshotSession(SnapshotMode.AUTO, [xfs / "data"], on_message=lambda m: None) as ss:
        view = ss.view(xfs / "data")
        assert view is not None
        with view.open_file(target) as clone:
            target.write_text("after, longer")
            assert clone.read_text() == "before"
            assert clone.parent in view.internal_paths
        assert len(hidden(xfs)) == 1  # the work dir, while the session is open
    assert hidden(xfs) == []


def test_open_file_on_a_missing_file_is_a_snapshot_error(xfs: Path) -> None:
    with SnapshotSession(SnapshotMode.AUTO, [xfs / "data"], on_message=lambda m: None) as ss:
        view = ss.view(xfs / "data")
        assert view is not None
        with pytest.raises(SnapshotError, match=r"gone\.txt"), view.open_file(xfs / "data" / "gone.txt"):
            pass
        work = ss.internal_paths[0]
        assert list(work.iterdir()) == []  # the failed clone left nothing
    assert hidden(xfs) == []


def test_stale_work_dir_is_removed_by_the_next_session(xfs: Path) -> None:
    stale = xfs / f".shadowvault-reflink-{dead_pid()}-0badf00d"
    stale.mkdir()
    (stale / "clone-x").write_bytes(b"left by a crash")
    messages: list[str] = []
    with SnapshotSession(SnapshotMode.AUTO, [xfs / "data"], on_message=messages.append):
        assert not stale.exists()
    assert any("stale" in m and stale.name in m for m in messages)


def test_probe_rejects_xfs_without_reflink(tmp_path: Path) -> None:
    with loop_fs(tmp_path, "xfs", mkfs_args=["-m", "reflink=0"]) as mnt:
        answer = ReflinkProvider().supports(mnt)
        assert isinstance(answer, Unsupported)
        assert "does not support reflinks" in answer.reason
        assert hidden(mnt) == []  # the probe files are gone


def test_probe_accepts_btrfs(tmp_path: Path) -> None:
    with loop_fs(tmp_path, "btrfs", size="150M") as mnt:
        provider = ReflinkProvider()
        answer = provider.supports(mnt)
        assert isinstance(answer, Volume) and answer.root == mnt
        handle = provider.create(answer, "shadowvault", "1-0badf00d")
        (mnt / "f").write_text("x" * 5000)
        with provider.open_file(handle, mnt / "f") as clone:
            assert clone.read_text() == "x" * 5000
        provider.delete(handle)
        assert hidden(mnt) == []


def test_file_on_a_nested_mount_cannot_be_cloned_and_says_why(xfs: Path) -> None:
    nested = xfs / "data" / "nested"
    nested.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "svtest", str(nested)], check=True)
    try:
        (nested / "f").write_text("on tmpfs")
        with SnapshotSession(SnapshotMode.AUTO, [xfs / "data"], on_message=lambda m: None) as ss:
            view = ss.view(xfs / "data")
            assert view is not None
            with pytest.raises(SnapshotError, match="another mount"), view.open_file(nested / "f"):
                pass
    finally:
        subprocess.run(["umount", str(nested)], check=True)
