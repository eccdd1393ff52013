"""btrfs provider and SnapshotSession on a real loop-mounted btrfs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.snapshots.snap_helpers import dead_pid

from loopfs import loop_fs, sh
from shadowvault.errors import SnapshotError
from shadowvault.snapshots import SnapshotMode, SnapshotSession, Volume
from shadowvault.snapshots.btrfs import BtrfsProvider

pytestmark = [pytest.mark.root, pytest.mark.loopdev]

SRC = str(Path(__file__).resolve().parents[2] / "src")


@pytest.fixture
def btrfs(tmp_path: Path) -> Iterator[Path]:
    """A btrfs mount with subvolume ``sub`` holding ``sub/dir/a.txt``."""
    with loop_fs(tmp_path, "btrfs", size="150M") as mnt:
        sh("btrfs", "subvolume", "create", str(mnt / "sub"))
        (mnt / "sub" / "dir").mkdir()
        (mnt / "sub" / "dir" / "a.txt").write_text("old content")
        yield mnt


def our_snapshots(mnt: Path) -> list[str]:
    """Subvolumes on the file system whose name carries our prefix."""
    listing = sh("btrfs", "subvolume", "list", "-a", str(mnt))
    return [line for line in listing.splitlines() if ".shadowvault-" in line]


def test_supports_finds_the_subvolume_root(btrfs: Path) -> None:
    answer = BtrfsProvider().supports(btrfs / "sub" / "dir" / "a.txt")
    assert isinstance(answer, Volume)
    assert answer.root == btrfs / "sub"
    top = BtrfsProvider().supports(btrfs / "plain")
    # A path that does not exist has no subvolume root to find.
    assert not isinstance(top, Volume)
    (btrfs / "plain").mkdir()
    top = BtrfsProvider().supports(btrfs / "plain")
    assert isinstance(top, Volume) and top.root == btrfs  # the top-level subvolume


def test_view_reads_content_from_before_the_change(btrfs: Path) -> None:
    messages: list[str] = []
    source = btrfs / "sub" / "dir"
    with SnapshotSession(SnapshotMode.AUTO, [source], on_message=messages.append) as ss:
        view = ss.view(source)
        assert view is not None and view.provider == "btrfs"
        (source / "a.txt").write_text("new content, written after the snapshot")
        (source / "b.txt").write_text("created after the snapshot")
        assert view.walk_root != source and view.walk_root.name == "dir"
        assert sorted(p.name for p in view.walk_root.iterdir()) == ["a.txt"]
        with view.open_file(source / "a.txt") as readable:
            assert readable.read_text() == "old content"
        assert view.to_original(view.walk_root / "a.txt") == source / "a.txt"
        assert len(our_snapshots(btrfs)) == 1
    assert messages == []  # success is silent: callers show messages as warnings
    assert our_snapshots(btrfs) == []
    assert not any(p.name.startswith(".shadowvault-") for p in (btrfs / "sub").iterdir())


def test_sources_on_one_subvolume_share_a_snapshot(btrfs: Path) -> None:
    (btrfs / "sub" / "other").mkdir()
    sources = [btrfs / "sub" / "dir", btrfs / "sub" / "other"]
    with SnapshotSession(SnapshotMode.AUTO, sources, on_message=lambda m: None) as ss:
        first, second = ss.view(sources[0]), ss.view(sources[1])
        assert first is not None and second is not None
        assert first.handle == second.handle
        assert len(our_snapshots(btrfs)) == 1


def test_required_snapshots_in_enter_and_auto_waits_for_view(btrfs: Path) -> None:
    source = btrfs / "sub"
    with SnapshotSession(SnapshotMode.REQUIRED, [source], on_message=lambda m: None) as ss:
        assert len(our_snapshots(btrfs)) == 1
        assert ss.view(source) is not None
    with SnapshotSession(SnapshotMode.AUTO, [source], on_message=lambda m: None) as ss:
        assert our_snapshots(btrfs) == []
        assert ss.view(source) is not None
        assert len(our_snapshots(btrfs)) == 1
    assert our_snapshots(btrfs) == []


def test_exception_inside_the_block_removes_the_snapshot(btrfs: Path) -> None:
    source = btrfs / "sub"
    with (
        pytest.raises(RuntimeError, match="boom"),
        SnapshotSession(SnapshotMode.AUTO, [source], on_message=lambda m: None) as ss,
    ):
        assert ss.view(source) is not None
        assert len(our_snapshots(btrfs)) == 1
        raise RuntimeError("boom")
    assert our_snapshots(btrfs) == []


def test_stale_snapshot_of_a_dead_session_is_removed(btrfs: Path) -> None:
    dead = btrfs / "sub" / f".shadowvault-snap-{dead_pid()}-0badf00d"
    live = btrfs / "sub" / f".shadowvault-snap-{os.getppid()}-0badf00d"
    for snap in (dead, live):
        sh("btrfs", "subvolume", "snapshot", "-r", str(btrfs / "sub"), str(snap))
    messages: list[str] = []
    with SnapshotSession(SnapshotMode.AUTO, [btrfs / "sub"], on_message=messages.append):
        assert not dead.exists()
        # A session whose process still runs is not stale, whatever its age.
        assert live.exists()
    assert any("stale" in m and dead.name in m for m in messages)
    assert [line.rsplit("/", 1)[-1] for line in our_snapshots(btrfs)] == [live.name]
    sh("btrfs", "subvolume", "delete", str(live))


def test_off_mode_neither_snapshots_nor_cleans(btrfs: Path) -> None:
    stale = btrfs / "sub" / f".shadowvault-snap-{dead_pid()}-0badf00d"
    sh("btrfs", "subvolume", "snapshot", "-r", str(btrfs / "sub"), str(stale))
    with SnapshotSession(SnapshotMode.OFF, [btrfs / "sub"], on_message=lambda m: None) as ss:
        assert ss.view(btrfs / "sub") is None
    assert stale.exists()
    sh("btrfs", "subvolume", "delete", str(stale))


def test_translate_refuses_paths_off_the_volume(btrfs: Path) -> None:
    with SnapshotSession(SnapshotMode.REQUIRED, [btrfs / "sub"], on_message=lambda m: None) as ss:
        view = ss.view(btrfs / "sub")
        assert view is not None
        with pytest.raises(SnapshotError):
            view.translate(Path("/etc/hostname"))


CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    sys.path.insert(0, {src!r})
    from shadowvault.snapshots import SnapshotMode, SnapshotSession
    source = Path({source!r})
    with SnapshotSession(SnapshotMode.AUTO, [source], on_message=lambda m: None) as ss:
        view = ss.view(source)
        print("ready", view.handle.path, flush=True)
        time.sleep(60)
    """
)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_to_a_child_session_removes_its_snapshot(btrfs: Path, signum: signal.Signals) -> None:
    code = CHILD.format(src=SRC, source=str(btrfs / "sub"))
    with subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as child:
        try:
            assert child.stdout is not None
            line = child.stdout.readline().split()
            assert line[:1] == ["ready"], child.communicate(timeout=30)[1]
            snapshot = Path(line[1])
            assert snapshot.exists()
            child.send_signal(signum)
            _, err = child.communicate(timeout=30)
        finally:
            if child.poll() is None:
                child.kill()
    assert child.returncode != 0
    # The child died through the interrupt it was sent, not of something else.
    assert ("KeyboardInterrupt" in err) if signum == signal.SIGINT else child.returncode == 143
    assert not snapshot.exists()
    assert our_snapshots(btrfs) == []


def test_file_systems_mounted_below_the_source_are_reported(btrfs: Path, tmp_path: Path) -> None:
    inner = btrfs / "sub" / "dir" / "inner"
    inner.mkdir()
    with loop_fs(tmp_path, "xfs") as other:
        sh("mount", "--bind", str(other), str(inner))
        try:
            messages: list[str] = []
            with SnapshotSession(SnapshotMode.AUTO, [btrfs / "sub"], on_message=messages.append) as ss:
                view = ss.view(btrfs / "sub")
                assert view is not None
                assert view.nested_mounts == (btrfs / "sub" / "dir" / "inner",)
            assert any(str(inner) in m and "empty" in m for m in messages)
        finally:
            sh("umount", str(inner))
