"""SnapshotSession rules: modes, pre/post commands, failures, stale cleanup, on tmpfs and a copy provider."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from pathlib import Path

import pytest
from tests.conftest import require_root
from tests.snapshots.snap_helpers import dead_pid

from shadowvault.errors import SnapshotError
from shadowvault.snapshots import Handle, SnapshotMode, SnapshotSession, Unsupported, Volume
from shadowvault.snapshots.commands import CommandResult, run_command
from shadowvault.snapshots.interface import same_path, translate_under
from shadowvault.snapshots.session import signals_held


class CopyProvider:
    """A real but naive provider for session tests: a snapshot is a full copy of a directory.

    Every directory in ``roots`` is a volume. Events go to ``log`` (a file shared with the
    pre/post shell commands, so their relative order is visible).
    """

    name = "copy"

    def __init__(self, roots: Sequence[Path], log: Path, *, fail: Sequence[Path] = ()) -> None:
        self.roots = list(roots)
        self.log = log
        self.fail = {str(p) for p in fail}
        self.asked = 0
        self.stale: list[Handle] = []
        self.deleted: list[str] = []

    def _event(self, text: str) -> None:
        with self.log.open("a") as f:
            f.write(text + "\n")

    def supports(self, path: Path) -> Volume | Unsupported:
        self.asked += 1
        for root in self.roots:
            if path == root or root in path.parents:
                return Volume(self.name, str(root), root)
        return Unsupported(self.name, f"{path} is not under a copy root")

    def create(self, volume: Volume, prefix: str, session: str) -> Handle:
        self._event(f"create {volume.root.name}")
        if volume.key in self.fail:
            raise SnapshotError(f"copy of {volume.root} failed on purpose")
        target = volume.root.parent / f".{prefix}-copy-{session}-{volume.root.name}"
        shutil.copytree(volume.root, target, symlinks=True)
        return Handle(self.name, str(target), session, path=target, volume=volume)

    def translate(self, handle: Handle, path: Path) -> Path:
        assert handle.volume is not None and handle.path is not None
        return translate_under(handle.volume.root, handle.path, path)

    def open_file(self, handle: Handle, path: Path) -> AbstractContextManager[Path]:
        return same_path(self.translate(handle, path))

    def delete(self, handle: Handle) -> None:
        self._event(f"delete {Path(handle.name).name}")
        self.deleted.append(handle.name)
        if handle.path is not None:
            shutil.rmtree(handle.path, ignore_errors=True)

    def list_stale(self, prefix: str) -> list[Handle]:
        return list(self.stale)


@pytest.fixture
def vols(tmp_path: Path) -> tuple[Path, Path, Path]:
    """Two volume directories with a file each, and the event log."""
    a, b = tmp_path / "vol-a", tmp_path / "vol-b"
    for vol in (a, b):
        (vol / "dir").mkdir(parents=True)
        (vol / "dir" / "f.txt").write_text(f"{vol.name} old")
    return a, b, tmp_path / "events.log"


def events(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def test_pre_then_create_then_post_then_delete(vols: tuple[Path, Path, Path]) -> None:
    a, b, log = vols
    provider = CopyProvider([a, b], log)
    with SnapshotSession(
        SnapshotMode.AUTO,
        [a / "dir", b],
        pre_snapshot=f"echo pre >> {log}",
        post_snapshot=f"echo post >> {log}",
        on_message=lambda m: None,
        providers=[provider],
    ) as ss:
        assert events(log) == []  # AUTO waits for the first view
        view = ss.view(a / "dir")
        assert view is not None and view.provider == "copy"
        (a / "dir" / "f.txt").write_text("changed")
        with view.open_file(a / "dir" / "f.txt") as p:
            assert p.read_text() == "vol-a old"
        assert ss.view(b) is not None
        assert events(log) == ["pre", "create vol-a", "create vol-b", "post"]
    assert events(log)[4:] and all(e.startswith("delete") for e in events(log)[4:])
    assert len(events(log)) == 6
    assert sorted(p.name for p in a.parent.iterdir() if p.name.startswith(".")) == []


def test_failing_pre_command_fails_the_snapshot_and_post_still_runs(vols: tuple[Path, Path, Path]) -> None:
    a, _, log = vols
    messages: list[str] = []
    with SnapshotSession(
        SnapshotMode.AUTO,
        [a],
        pre_snapshot="echo cannot quiesce >&2; exit 3",
        post_snapshot=f"echo post >> {log}",
        on_message=messages.append,
        providers=[CopyProvider([a], log)],
    ) as ss:
        assert ss.view(a) is None
    assert events(log) == ["post"]
    assert any("pre_snapshot command failed: cannot quiesce" in m for m in messages)
    assert any(str(a) in m and "read live" in m for m in messages)


def test_failing_pre_command_with_required_raises_from_enter(vols: tuple[Path, Path, Path]) -> None:
    a, _, log = vols
    session = SnapshotSession(
        SnapshotMode.REQUIRED,
        [a],
        pre_snapshot="exit 1",
        post_snapshot=f"echo post >> {log}",
        on_message=lambda m: None,
        providers=[CopyProvider([a], log)],
    )
    with pytest.raises(SnapshotError, match="pre_snapshot") as err, session:
        pytest.fail("the block must not run")
    assert str(a) in str(err.value)
    assert events(log) == ["post"]


def test_failing_post_command_is_reported_and_the_snapshot_stays_usable(
    vols: tuple[Path, Path, Path],
) -> None:
    a, _, log = vols
    messages: list[str] = []
    with SnapshotSession(
        SnapshotMode.REQUIRED,
        [a],
        post_snapshot="echo thaw failed >&2; false",
        on_message=messages.append,
        providers=[CopyProvider([a], log)],
    ) as ss:
        assert ss.view(a) is not None
    assert any("post_snapshot command failed: thaw failed" in m for m in messages)


def test_required_failure_removes_snapshots_already_made(vols: tuple[Path, Path, Path]) -> None:
    a, b, log = vols
    provider = CopyProvider([a, b], log, fail=[b])
    session = SnapshotSession(
        SnapshotMode.REQUIRED,
        [a, b],
        on_message=lambda m: None,
        providers=[provider],
        post_snapshot=f"echo post >> {log}",
    )
    with pytest.raises(SnapshotError, match="failed on purpose") as err, session:
        pytest.fail("the block must not run")
    assert str(b) in str(err.value)
    assert events(log)[:3] == ["create vol-a", "create vol-b", "post"]
    assert len(provider.deleted) == 1 and "vol-a" in provider.deleted[0]


def test_auto_failure_of_one_volume_leaves_the_other(vols: tuple[Path, Path, Path]) -> None:
    a, b, log = vols
    messages: list[str] = []
    provider = CopyProvider([a, b], log, fail=[b])
    with SnapshotSession(SnapshotMode.AUTO, [a, b], on_message=messages.append, providers=[provider]) as ss:
        assert ss.view(a) is not None
        assert ss.view(b) is None
    assert [m for m in messages if "read live" in m] == [
        f"snapshot: {b} will be read live: copy: copy of {b} failed on purpose"
    ]


class SecondCopyProvider(CopyProvider):
    """Another provider of the same kind, to see the session fall back to it."""

    name = "copy2"


def test_a_failed_create_falls_back_to_the_next_provider(vols: tuple[Path, Path, Path]) -> None:
    a, _, log = vols
    messages: list[str] = []
    first, second = CopyProvider([a], log, fail=[a]), SecondCopyProvider([a], log)
    with SnapshotSession(
        SnapshotMode.REQUIRED, [a], on_message=messages.append, providers=[first, second]
    ) as ss:
        view = ss.view(a)
        assert view is not None and view.provider == "copy2"
    assert any(f"{a} uses copy2 (copy: copy of {a} failed on purpose)" in m for m in messages)
    assert events(log) == ["create vol-a", "create vol-a", f"delete {Path(second.deleted[0]).name}"]


def test_off_mode_asks_no_provider(vols: tuple[Path, Path, Path]) -> None:
    a, _, log = vols
    provider = CopyProvider([a], log)
    provider.stale = [Handle("copy", "x", f"{dead_pid()}-0badf00d")]
    with SnapshotSession(SnapshotMode.OFF, [a], on_message=lambda m: None, providers=[provider]) as ss:
        assert ss.view(a) is None
    assert provider.asked == 0 and provider.deleted == []


def test_nothing_supported_runs_no_commands(vols: tuple[Path, Path, Path], tmp_path: Path) -> None:
    a, _, log = vols
    other = tmp_path / "elsewhere"
    other.mkdir()
    with SnapshotSession(
        SnapshotMode.AUTO,
        [other],
        pre_snapshot=f"echo pre >> {log}",
        post_snapshot=f"echo post >> {log}",
        on_message=lambda m: None,
        providers=[CopyProvider([a], log)],
    ) as ss:
        assert ss.view(other) is None
    assert events(log) == []


@pytest.mark.parametrize("exc", [RuntimeError("boom"), KeyboardInterrupt()])
def test_exceptions_in_the_block_delete_snapshots(vols: tuple[Path, Path, Path], exc: BaseException) -> None:
    a, _, log = vols
    provider = CopyProvider([a], log)
    with (
        pytest.raises(type(exc)),
        SnapshotSession(SnapshotMode.AUTO, [a], on_message=lambda m: None, providers=[provider]) as ss,
    ):
        assert ss.view(a) is not None
        raise exc
    assert len(provider.deleted) == 1
    assert not Path(provider.deleted[0]).exists()


def test_stale_handles_of_dead_and_closed_sessions_only_are_removed(vols: tuple[Path, Path, Path]) -> None:
    a, _, log = vols
    provider = CopyProvider([a], log)
    messages: list[str] = []
    with SnapshotSession(SnapshotMode.AUTO, [a], on_message=lambda m: None, providers=[provider]) as running:
        closed = f"{os.getpid()}-0badf00d"
        provider.stale = [
            Handle("copy", "dead", f"{dead_pid()}-0badf00d"),
            Handle("copy", "parent", f"{os.getppid()}-0badf00d"),
            Handle("copy", "running", running.session_id),
            Handle("copy", "closed", closed),
        ]
        with SnapshotSession(SnapshotMode.AUTO, [a], on_message=messages.append, providers=[provider]):
            pass
    assert provider.deleted == ["dead", "closed"]
    assert sum("removed stale copy snapshot" in m for m in messages) == 2


def test_view_of_an_unknown_source_is_an_error(vols: tuple[Path, Path, Path]) -> None:
    a, b, log = vols
    with (
        SnapshotSession(
            SnapshotMode.AUTO, [a], on_message=lambda m: None, providers=[CopyProvider([a, b], log)]
        ) as ss,
        pytest.raises(SnapshotError, match="not one of"),
    ):
        ss.view(b)


def test_symlinked_source_translates_and_maps_back(vols: tuple[Path, Path, Path], tmp_path: Path) -> None:
    a, _, log = vols
    link = tmp_path / "link"
    link.symlink_to(a / "dir")
    with SnapshotSession(
        SnapshotMode.AUTO, [link], on_message=lambda m: None, providers=[CopyProvider([a], log)]
    ) as ss:
        view = ss.view(link)
        assert view is not None
        assert view.translate(link / "f.txt") == view.walk_root / "f.txt"
        assert view.to_original(view.walk_root / "f.txt") == link / "f.txt"
        assert ss.view(a / "dir") is view  # the same source, named by its real path


def test_hook_commands_go_through_the_injected_runner(vols: tuple[Path, Path, Path]) -> None:
    a, _, log = vols
    seen: list[list[str]] = []

    def runner(argv: Sequence[str]) -> CommandResult:
        seen.append(list(argv))
        return run_command(argv)

    with SnapshotSession(
        SnapshotMode.REQUIRED,
        [a],
        pre_snapshot="true",
        post_snapshot="true",
        on_message=lambda m: None,
        providers=[CopyProvider([a], log)],
        runner=runner,
    ):
        pass
    assert seen == [["/bin/sh", "-c", "true"], ["/bin/sh", "-c", "true"]]


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A private tmpfs mount (no provider can snapshot tmpfs)."""
    require_root()
    mnt = tmp_path / "tmpfs"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "svtest", str(mnt)], check=True)
    try:
        (mnt / "data").mkdir()
        yield mnt / "data"
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


@pytest.mark.root
def test_tmpfs_with_auto_reads_live_and_says_why(tmpfs: Path) -> None:
    messages: list[str] = []
    with SnapshotSession(SnapshotMode.AUTO, [tmpfs], on_message=messages.append) as ss:
        assert ss.view(tmpfs) is None
    live = [m for m in messages if "read live" in m]
    assert len(live) == 1
    assert str(tmpfs) in live[0] and "tmpfs" in live[0] and "reflink" in live[0]


@pytest.mark.root
def test_tmpfs_with_required_fails_in_one_line(tmpfs: Path) -> None:
    with (
        pytest.raises(SnapshotError) as err,
        SnapshotSession(SnapshotMode.REQUIRED, [tmpfs], on_message=lambda m: None),
    ):
        pytest.fail("the block must not run")
    text = str(err.value)
    assert "\n" not in text and text.startswith(f"snapshot required but {tmpfs} cannot be snapshotted")
    assert err.value.exit_code == 1
    assert [p.name for p in tmpfs.parent.iterdir() if p.name.startswith(".shadowvault")] == []


def test_view_needs_an_open_session_and_modes_accept_config_strings(vols: tuple[Path, Path, Path]) -> None:
    a, _, log = vols
    session = SnapshotSession("auto", [a], on_message=lambda m: None, providers=[CopyProvider([a], log)])
    assert session.mode is SnapshotMode.AUTO
    with pytest.raises(SnapshotError, match="not open"):
        session.view(a)
    with session:
        assert session.view(a) is not None
    with pytest.raises(SnapshotError, match="not open"):
        session.view(a)


def test_signals_held_defers_ctrl_c_while_other_threads_run() -> None:
    """A backup has worker threads: the kernel gives a signal the main thread blocks to one of
    them, so holding it must not rely on this thread's signal mask."""
    stop = threading.Event()
    worker = threading.Thread(target=stop.wait, args=(10,))
    worker.start()
    reached = False
    try:
        with pytest.raises(KeyboardInterrupt), signals_held():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
            reached = True
    finally:
        stop.set()
        worker.join()
    assert reached
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_signals_held_defers_ctrl_c_to_the_end_of_the_block() -> None:
    reached = False
    with pytest.raises(KeyboardInterrupt), signals_held():
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)  # a delivered SIGINT would raise within this sleep
        reached = True
    assert reached
