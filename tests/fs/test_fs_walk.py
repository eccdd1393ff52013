"""FileMeta from real files and the ordered, error-tolerant walk."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
from pathlib import Path

import pytest
from tests.conftest import require, require_binary, require_root

from shadowvault.fs.defaults import CACHEDIR_TAG_SIGNATURE
from shadowvault.fs.excludes import ExcludeMatcher
from shadowvault.fs.meta import FileMeta, kind_of, read_meta
from shadowvault.fs.walk import Selector, devices_of, list_dir, walk


def make_tree(root: Path, spec: dict[str, object]) -> None:
    """dict values: bytes → file, dict → directory, ("link", target) → symlink."""
    root.mkdir(parents=True, exist_ok=True)
    for name, value in spec.items():
        p = root / name
        if isinstance(value, dict):
            make_tree(p, value)
        elif isinstance(value, tuple):
            p.symlink_to(value[1])
        else:
            assert isinstance(value, bytes)
            p.write_bytes(value)


def selector(excludes: list[str] | None = None, **kw: object) -> Selector:
    args: dict[str, object] = {
        "exclude_if_present": ["CACHEDIR.TAG"],
        "one_file_system": False,
        "root_devices": set(),
        "extra_excluded_paths": set(),
    }
    args.update(kw)
    return Selector(ExcludeMatcher(excludes or []), **args)  # type: ignore[arg-type]


def test_read_meta_kinds_and_fields(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_bytes(b"hello")
    os.utime(f, ns=(1_000_000_123, 2_000_000_456))
    d = tmp_path / "d"
    d.mkdir()
    link = tmp_path / "l"
    link.symlink_to(b"target/\xff")
    fifo = tmp_path / "p"
    os.mkfifo(fifo)
    sock_path = tmp_path / "s"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(sock_path))
        meta_sock = read_meta(bytes(sock_path))
    st = os.lstat(f)
    m = read_meta(bytes(f))
    assert (m.name, m.kind, m.size, m.inode, m.device, m.nlink) == (b"f", "file", 5, st.st_ino, st.st_dev, 1)
    assert (m.mtime_ns, m.atime_ns) == (2_000_000_456, 1_000_000_123)
    assert m.ctime_ns == st.st_ctime_ns and m.mode == st.st_mode and m.is_regular
    assert m.uid == os.getuid() and m.user != "" and m.group != ""
    assert m.linktarget is None
    assert read_meta(bytes(d)).kind == "dir" and read_meta(bytes(d)).is_dir
    lm = read_meta(bytes(link))
    assert lm.kind == "symlink" and lm.linktarget == b"target/\xff"
    assert read_meta(bytes(fifo)).kind == "fifo"
    assert meta_sock.kind == "socket"
    assert read_meta(b"/dev/null").kind == "chardev"
    assert read_meta(b"/").name == b""
    with pytest.raises(FileNotFoundError):
        read_meta(bytes(tmp_path / "gone"))


def test_block_device_kind_and_unknown_ids(tmp_path: Path) -> None:
    require_root()
    dev = tmp_path / "blk"
    os.mknod(dev, 0o600 | stat.S_IFBLK, os.makedev(7, 200))
    os.chown(dev, 54321, 54329)
    m = read_meta(bytes(dev))
    assert m.kind == "dev" and m.rdev == os.makedev(7, 200)
    assert (m.uid, m.gid, m.user, m.group) == (54321, 54329, "", "")
    with pytest.raises(ValueError):
        kind_of(0o170000)


def test_xattrs(tmp_path: Path) -> None:
    f = tmp_path / "x"
    f.write_bytes(b"")
    try:
        os.setxattr(f, "user.b", b"2")
        os.setxattr(f, "user.a", b"\x00\x01")
    except OSError as e:
        require(False, f"tmp dir has no user xattrs: {e}")
    m = read_meta(bytes(f))
    assert [(k, v) for k, v in m.xattrs if k.startswith("user.")] == [
        ("user.a", b"\x00\x01"),
        ("user.b", b"2"),
    ]
    link = tmp_path / "xl"
    link.symlink_to(f)
    assert all(not k.startswith("user.") for k, _ in read_meta(bytes(link)).xattrs)  # not followed
    # /proc does not support xattrs: empty list, no error
    assert read_meta(b"/proc/self/status").xattrs == []
    # The totals scan walks without them (one listxattr per file less); the backup's walk reads them.
    walked = dict(walk([bytes(tmp_path)], selector(), lambda p, e: None))
    assert any(k.startswith("user.") for k, _ in walked[bytes(f)].xattrs)
    bare = dict(walk([bytes(tmp_path)], selector(), lambda p, e: None, with_xattrs=False))
    assert bare[bytes(f)].xattrs == [] and bare[bytes(f)].size == walked[bytes(f)].size


def test_walk_order_and_selection(tmp_path: Path) -> None:
    make_tree(
        tmp_path / "t",
        {
            "b.txt": b"b",
            "a": {"z.log": b"z", "y.txt": b"y", "sub": {"deep.txt": b"d"}},
            "a.txt": b"a",
            "cache": {"CACHEDIR.TAG": CACHEDIR_TAG_SIGNATURE, "blob": b"x"},
            "fakecache": {"CACHEDIR.TAG": b"not a tag", "keep": b"k"},
            "node_modules": {"m.js": b"m"},
            "ln": ("link", "a"),
            b"\xff-bin".decode("utf-8", "surrogateescape"): b"raw",
        },
    )
    root = bytes(tmp_path / "t")
    errors: list[tuple[bytes, OSError]] = []
    sel = selector(["*.log", "node_modules/"])
    got = [os.path.relpath(p, root) for p, _ in walk([root], sel, lambda p, e: errors.append((p, e)))]
    assert got == [
        b".",
        b"a",
        b"a/sub",
        b"a/sub/deep.txt",
        b"a/y.txt",
        b"a.txt",
        b"b.txt",
        b"fakecache",
        b"fakecache/CACHEDIR.TAG",
        b"fakecache/keep",
        b"ln",
        b"\xff-bin",
    ]
    assert errors == []
    assert list_dir(root) == sorted(os.listdir(root))
    assert sel.dir_excluded_by_marker(os.path.join(root, b"cache"))
    assert not sel.dir_excluded_by_marker(os.path.join(root, b"fakecache"))
    cache_meta = read_meta(os.path.join(root, b"cache"))
    assert sel.exclusion_reason(os.path.join(root, b"cache"), cache_meta) == "contains CACHEDIR.TAG"


def test_extra_paths_and_swap_excluded(tmp_path: Path) -> None:
    make_tree(tmp_path, {"repo": {"config": b"c"}, "data": {"f": b"1"}})
    swap = tmp_path / "data" / "vm-area"
    data = bytearray(64 * 1024)
    data[4086:4096] = b"SWAPSPACE2"
    swap.write_bytes(bytes(data))
    sel = selector(extra_excluded_paths={bytes(tmp_path / "repo")})
    got = {p for p, _ in walk([bytes(tmp_path)], sel, lambda p, e: None)}
    assert bytes(tmp_path / "repo") not in got and bytes(tmp_path / "repo" / "config") not in got
    assert bytes(tmp_path / "data" / "f") in got and bytes(swap) not in got
    no_detect = selector(detect_swap=False)
    assert no_detect.selected(bytes(swap), read_meta(bytes(swap)))


def test_errors_do_not_stop_the_walk(tmp_path: Path) -> None:
    make_tree(tmp_path, {"locked": {"secret": b"s"}, "open": {"f": b"f"}})
    errors: list[tuple[bytes, OSError]] = []
    # a root that does not exist, then a real one; and a directory we cannot list
    missing = bytes(tmp_path / "missing")
    if os.geteuid() == 0:
        # root ignores permissions: make listing fail by replacing the dir with one we delete mid-walk
        gen = walk([missing, bytes(tmp_path)], selector(), lambda p, e: errors.append((p, e)))
        seen = []
        for path, _ in gen:
            seen.append(path)
            if path == bytes(tmp_path / "locked"):
                os.rename(tmp_path / "locked", tmp_path / "moved")  # vanishes before it is listed
    else:
        os.chmod(tmp_path / "locked", 0)
        seen = [
            p for p, _ in walk([missing, bytes(tmp_path)], selector(), lambda p, e: errors.append((p, e)))
        ]
    assert [p for p, _ in errors] == [missing, bytes(tmp_path / "locked")]
    assert isinstance(errors[0][1], FileNotFoundError)
    assert bytes(tmp_path / "open" / "f") in seen


def test_vanished_file_reported(tmp_path: Path) -> None:
    make_tree(tmp_path, {"a": b"1", "b": b"2", "c": b"3"})
    errors: list[bytes] = []
    seen: list[bytes] = []
    for path, _ in walk([bytes(tmp_path)], selector(), lambda p, e: errors.append(p)):
        seen.append(path)
        if path.endswith(b"/a"):
            os.unlink(tmp_path / "b")
    assert errors == [bytes(tmp_path / "b")]
    assert seen[-1] == bytes(tmp_path / "c")


def test_one_file_system_keeps_mount_point_empty(tmp_path: Path) -> None:
    require_root()
    mount = require_binary("mount")
    make_tree(tmp_path, {"src": {"mnt": {}, "file": b"f"}})
    mnt = tmp_path / "src" / "mnt"
    subprocess.run([mount, "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], check=True)
    try:
        (mnt / "inside").write_bytes(b"i")
        roots = [bytes(tmp_path / "src")]
        one = selector(one_file_system=True, root_devices=devices_of(roots))
        got = [p for p, _ in walk(roots, one, lambda p, e: None)]
        assert bytes(mnt) in got and bytes(mnt / "inside") not in got
        everything = [p for p, _ in walk(roots, selector(), lambda p, e: None)]
        assert bytes(mnt / "inside") in everything
        inside_meta = read_meta(bytes(mnt / "inside"))
        assert one.exclusion_reason(bytes(mnt / "inside"), inside_meta) == "on another file system"
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def test_meta_is_frozen(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"")
    m: FileMeta = read_meta(bytes(tmp_path / "f"))
    with pytest.raises(AttributeError):
        m.size = 3  # type: ignore[misc]


def test_selector_for_roots(tmp_path: Path) -> None:
    make_tree(tmp_path, {"src": {"a.log": b"l", "tmp": {"x": b"x"}, "keep": b"k"}, "repo": {"config": b"c"}})
    roots = [bytes(tmp_path)]
    sel = Selector.for_roots(
        roots,
        exclude=["*.log"],
        exclude_if_present=[],
        one_file_system=True,
        excluded_paths=[str(tmp_path / "repo"), None],
    )
    got = {os.path.relpath(p, bytes(tmp_path)) for p, _ in walk(roots, sel, lambda p, e: None)}
    assert got == {b".", b"src", b"src/keep", b"src/tmp", b"src/tmp/x"}
    assert sel.root_devices == {os.stat(tmp_path).st_dev}
    assert "pagefile.sys" in sel.excludes.patterns
    # a root inside a built-in exclusion (pytest's tmp dir is under /tmp) keeps its contents
    assert ("/tmp/*" in sel.excludes.patterns) == (not bytes(tmp_path).startswith(b"/tmp/"))
    assert (
        "/proc/*"
        in Selector.for_roots(
            [b"/tmp/x"], exclude=[], exclude_if_present=[], one_file_system=False
        ).excludes.patterns
    )
    assert (
        "/tmp/*"
        not in Selector.for_roots(
            [b"/tmp/x"], exclude=[], exclude_if_present=[], one_file_system=False
        ).excludes.patterns
    )
    assert (
        "/tmp/*"
        in Selector.for_roots(
            [b"/"], exclude=[], exclude_if_present=[], one_file_system=False
        ).excludes.patterns
    )
    plain = Selector.for_roots(
        roots, exclude=[], exclude_if_present=[], one_file_system=False, use_default_excludes=False
    )
    assert plain.excludes.patterns == []
    with pytest.raises(ValueError, match="unclosed"):
        Selector.for_roots(roots, exclude=["[x"], exclude_if_present=[], one_file_system=False)
