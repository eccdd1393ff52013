"""The thin syscall wrappers against the real kernel: leases, OFD/flock locks, the /proc writer index."""

from __future__ import annotations

import fcntl
import os
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.conftest import require_root
from tests.openfiles.of_helpers import HOLD_OPEN_FOR_WRITING, Child

from shadowvault.openfiles import LeaseState, LockState, WriterIndex, WriterInfo
from shadowvault.openfiles.lease import (
    BreakWatch,
    lease_intact,
    read_lease_break_time,
    release_lease,
    take_read_lease,
)
from shadowvault.openfiles.locks import conflicting_lock, pack_flock, take_shared_locks, unpack_flock
from shadowvault.openfiles.writers import is_write_mode, parse_fdinfo_flags, parse_maps_line, scan


@pytest.fixture
def data(tmp_path: Path) -> Path:
    p = tmp_path / "data.bin"
    p.write_bytes(b"0123456789" * 1000)
    return p


@pytest.fixture
def watch() -> Iterator[BreakWatch]:
    w = BreakWatch()
    w.install()
    yield w
    w.restore()


def rdonly(path: Path) -> int:
    return os.open(path, os.O_RDONLY)


def test_flock_struct_matches_the_c_layout() -> None:
    raw = pack_flock(fcntl.F_RDLCK, 5, 10)
    assert len(raw) == 32  # sizeof(struct flock) on 64-bit Linux
    assert unpack_flock(raw) == (fcntl.F_RDLCK, 0, 5, 10, 0)
    assert struct.unpack_from("hh", raw) == (fcntl.F_RDLCK, 0)


def test_lease_granted_then_released(data: Path, watch: BreakWatch) -> None:
    fd = rdonly(data)
    try:
        assert take_read_lease(fd) == (LeaseState.GRANTED, None)
        assert lease_intact(fd)
        assert release_lease(fd) is True
        assert not lease_intact(fd)
        assert release_lease(fd) is False  # nothing left to release
    finally:
        os.close(fd)


def test_lease_refused_while_another_process_has_it_open_for_writing(data: Path, watch: BreakWatch) -> None:
    fd = rdonly(data)
    try:
        with Child(HOLD_OPEN_FOR_WRITING, str(data)) as w:
            w.wait_ready()
            state, err = take_read_lease(fd)
            assert state is LeaseState.REFUSED and err is not None
        assert take_read_lease(fd)[0] is LeaseState.GRANTED  # the writer is gone
        release_lease(fd)
    finally:
        os.close(fd)


def test_lease_break_is_a_handled_signal_and_a_revoked_lease_cannot_be_released(
    data: Path, watch: BreakWatch
) -> None:
    require_root()
    knob = Path("/proc/sys/fs/lease-break-time")
    old = knob.read_text()
    fd = rdonly(data)
    try:
        knob.write_text("1")
        assert read_lease_break_time() == 1.0
        start = time.monotonic()
        assert take_read_lease(fd)[0] is LeaseState.GRANTED
        code = "fd = os.open(sys.argv[2], os.O_WRONLY)\nprint('ready', flush=True)\ntime.sleep(60)\n"
        with Child(code, str(data)) as w:
            w.wait_ready(timeout=10)  # the kernel let the writer in after ~1 s
            assert watch.first_break_since(start) is not None
            assert not lease_intact(fd)
            assert release_lease(fd) is False
    finally:
        knob.write_text(old)
        os.close(fd)


def test_shared_locks_hold_off_lock_respecting_writers(data: Path) -> None:
    fd = rdonly(data)
    probe = "import fcntl\nf = open(sys.argv[2], 'r+b')\n"
    try:
        assert take_shared_locks(fd) == (LockState.GRANTED, None)
        for how in (
            "fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)",
            "fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)",
        ):
            with Child(
                probe + f"try:\n    {how}\n    print('locked', flush=True)\n"
                "except OSError:\n    print('blocked', flush=True)\n",
                str(data),
            ) as w:
                assert w.line() == "blocked"
    finally:
        os.close(fd)  # closing drops both locks
    with Child(
        probe + "fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)\nprint('locked', flush=True)\n", str(data)
    ) as w:
        assert w.line() == "locked"


@pytest.mark.parametrize("how", ["fcntl.lockf(f, fcntl.LOCK_EX)", "fcntl.flock(f, fcntl.LOCK_EX)"])
def test_shared_locks_refused_by_a_write_lock_and_nothing_left_held(data: Path, how: str) -> None:
    code = f"import fcntl\nf = open(sys.argv[2], 'r+b')\n{how}\nprint('ready', flush=True)\ntime.sleep(60)\n"
    probe = (
        "import fcntl\nf = open(sys.argv[2], 'r+b')\nfcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
        "print('locked', flush=True)\n"
    )
    fd = rdonly(data)
    try:
        with Child(code, str(data)) as w:
            w.wait_ready()
            state, err = take_shared_locks(fd)
            assert state is LockState.REFUSED and err is not None
        # Our descriptor is still open: a refused flock must not have left the OFD read lock behind.
        assert conflicting_lock(fd) is None
        with Child(probe, str(data)) as p:
            assert p.line() == "locked"
    finally:
        os.close(fd)


def test_shared_locks_wait_briefly_for_a_writer_between_transactions(data: Path) -> None:
    """A writer that drops its write lock for a moment (a database between commits) is caught
    by the short polling window; with no window the same request is refused."""
    code = (
        "import fcntl\nf = open(sys.argv[2], 'r+b')\nfcntl.lockf(f, fcntl.LOCK_EX)\n"
        "print('ready', flush=True)\nsys.stdin.readline()\n"
        "while True:\n"
        "    fcntl.lockf(f, fcntl.LOCK_UN)\n    time.sleep(0.003)\n"
        "    fcntl.lockf(f, fcntl.LOCK_EX)\n    time.sleep(0.05)\n"
    )
    fd = rdonly(data)
    try:
        with Child(code, str(data)) as w:
            w.wait_ready()
            assert take_shared_locks(fd, wait=0)[0] is LockState.REFUSED
            w.tell("go")  # from now on the writer lets go for 3 ms every 50 ms
            assert take_shared_locks(fd, wait=5.0) == (LockState.GRANTED, None)
    finally:
        os.close(fd)


def test_fdinfo_and_maps_parsers() -> None:
    assert parse_fdinfo_flags("pos:\t0\nflags:\t0100002\nmnt_id:\t20\n") == 0o100002
    assert parse_fdinfo_flags("pos:\t0\n") is None
    assert is_write_mode(os.O_WRONLY | os.O_APPEND) and is_write_mode(os.O_RDWR)
    assert not is_write_mode(os.O_RDONLY | os.O_CLOEXEC)
    line = "7f0000000000-7f0000001000 rw-s 00000000 fd:01 1234567                    /data/x.db"
    assert parse_maps_line(line) == (os.makedev(0xFD, 1), 1234567)
    assert parse_maps_line(line.replace("rw-s", "-w-s")) == (os.makedev(0xFD, 1), 1234567)
    assert parse_maps_line(line.replace("rw-s", "rw-p")) is None
    assert parse_maps_line(line.replace("rw-s", "r--s")) is None
    assert parse_maps_line("7f00-7f01 rw-s 00000000 00:01 0 /dev/zero (deleted)") is None
    assert parse_maps_line("garbage") is None


def test_fdinfo_parser_reads_the_real_kernel_format(data: Path) -> None:
    fd = os.open(data, os.O_WRONLY | os.O_APPEND)
    try:
        flags = parse_fdinfo_flags(Path(f"/proc/self/fdinfo/{fd}").read_text())
        assert flags is not None and is_write_mode(flags) and flags & os.O_APPEND
    finally:
        os.close(fd)


def test_writer_index_names_writers_and_mappers_but_not_readers_or_us(tmp_path: Path) -> None:
    files = {name: tmp_path / name for name in ("written", "mapped", "read", "private", "ours")}
    for p in files.values():
        p.write_bytes(b"x" * 8192)
    # libc mmap directly: Python's mmap module keeps a dup of the fd, and the point here is a
    # mapping that outlives every descriptor.
    mapper = """
import ctypes, mmap
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
c = ctypes
libc.mmap.argtypes = [c.c_void_p, c.c_size_t, c.c_int, c.c_int, c.c_int, c.c_long]
rw = mmap.PROT_READ | mmap.PROT_WRITE
fd = os.open(sys.argv[2], os.O_RDWR)
assert libc.mmap(None, 4096, rw, mmap.MAP_SHARED, fd, 0) not in (None, 2**64 - 1)
os.close(fd)
fd = os.open(sys.argv[3], os.O_RDONLY)
assert libc.mmap(None, 4096, rw, mmap.MAP_PRIVATE, fd, 0) not in (None, 2**64 - 1)
os.close(fd)
reader = open(sys.argv[4], "rb")
print("ready", flush=True)
time.sleep(60)
"""
    ours = os.open(files["ours"], os.O_WRONLY)
    try:
        with (
            Child(HOLD_OPEN_FOR_WRITING, str(files["written"]), comm="svholder") as w,
            Child(
                mapper, str(files["mapped"]), str(files["private"]), str(files["read"]), comm="svmapper"
            ) as m,
        ):
            w.wait_ready()
            m.wait_ready()
            idx = scan()
            fd_targets = {
                os.path.realpath(f"/proc/{m.pid}/fd/{fd}") for fd in os.listdir(f"/proc/{m.pid}/fd")
            }
            assert str(files["mapped"]) not in fd_targets

            def key(name: str) -> tuple[int, int]:
                st = files[name].stat()
                return st.st_dev, st.st_ino

            assert idx[key("written")] == (WriterInfo(w.pid, "svholder"),)
            assert idx[key("mapped")] == (WriterInfo(m.pid, "svmapper"),)
            for name in ("read", "private", "ours"):
                assert key(name) not in idx, name

            lazy = WriterIndex(min_refresh_interval=0.0)
            assert lazy.scans == 0
            assert lazy.lookup(*key("mapped")) == (WriterInfo(m.pid, "svmapper"),)
            assert lazy.scans == 1
            w.stop()
            assert lazy.lookup(*key("written")) == (WriterInfo(w.pid, "svholder"),)  # as built
            assert lazy.lookup_fresh(*key("written")) == ()  # rescanned
            assert lazy.scans == 2
    finally:
        os.close(ours)


def test_writer_index_limits_rescans() -> None:
    idx = WriterIndex(min_refresh_interval=60.0)
    idx.lookup_fresh(0, 0)
    idx.lookup_fresh(0, 0)
    assert idx.scans == 1
