"""The fast paths of the walk give exactly what the straightforward code gives.

``read_meta`` fills its frozen ``FileMeta`` without the generated ``__init__`` and the exclude
matcher splits its patterns into three alternations; both are checked here against the plain
construction and against matching pattern by pattern.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import socket
import stat
from pathlib import Path

import pytest

from shadowvault.fs import ExcludeMatcher, FileMeta, default_excludes, read_meta
from shadowvault.fs.meta import group_name, kind_of, read_xattrs, user_name


def _plain(path: bytes) -> FileMeta:
    """FileMeta built field by field through the dataclass constructor."""
    st = os.lstat(path)
    kind = kind_of(st.st_mode)
    return FileMeta(
        name=os.path.basename(path.rstrip(b"/")) if path != b"/" else b"",
        kind=kind,
        mode=st.st_mode,
        uid=st.st_uid,
        gid=st.st_gid,
        user=user_name(st.st_uid),
        group=group_name(st.st_gid),
        inode=st.st_ino,
        device=st.st_dev,
        rdev=st.st_rdev,
        size=st.st_size,
        nlink=st.st_nlink,
        atime_ns=st.st_atime_ns,
        mtime_ns=st.st_mtime_ns,
        ctime_ns=st.st_ctime_ns,
        linktarget=os.readlink(path) if kind == "symlink" else None,
        xattrs=read_xattrs(path),
    )


def _entries(tmp_path: Path) -> list[bytes]:
    root = os.fsencode(tmp_path)
    (tmp_path / "file").write_bytes(b"data")
    (tmp_path / "dir").mkdir()
    (tmp_path / "link").symlink_to("file")
    os.mkfifo(tmp_path / "fifo")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tmp_path / "sock"))
    sock.close()
    (tmp_path / b"caf\xe9".decode("utf-8", "surrogateescape")).write_bytes(b"")
    try:
        os.setxattr(tmp_path / "file", "user.b", b"2")
        os.setxattr(tmp_path / "file", "user.a", b"\x00")
    except OSError:
        pass  # a file system without user xattrs still checks the rest
    return [
        root + b"/file",
        root + b"/dir",
        root + b"/dir/",
        root + b"/link",
        root + b"/fifo",
        root + b"/sock",
        root + b"/caf\xe9",
        b"/",
        b"/dev/null",
        b"dir-relative",
    ]


def test_read_meta_equals_the_constructed_dataclass(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = _entries(tmp_path)
    (tmp_path / "dir-relative").mkdir()
    monkeypatch.chdir(tmp_path)
    kinds = set()
    for path in paths:
        before = _plain(path)
        fast = read_meta(path)
        after = _plain(path)
        assert type(fast) is FileMeta
        # readlink may touch a symlink's atime, so a reading in between is allowed to differ there.
        assert before.atime_ns <= fast.atime_ns <= after.atime_ns
        plain = dataclasses.replace(before, atime_ns=fast.atime_ns)
        assert fast == plain
        assert vars(fast) == vars(plain)  # same fields, nothing extra
        kinds.add(fast.kind)
    assert kinds == {"file", "dir", "symlink", "fifo", "socket", "chardev"}
    meta = read_meta(paths[0])
    assert meta.linktarget is None and read_meta(paths[3]).linktarget == b"file"
    assert read_meta(b"/").name == b"" and read_meta(paths[2]).name == b"dir"
    assert read_meta(paths[0], with_xattrs=False).xattrs == []
    assert meta.permissions == stat.S_IMODE(meta.mode) and meta.is_regular and not meta.is_dir
    with pytest.raises(dataclasses.FrozenInstanceError):
        meta.size = 1  # type: ignore[misc]
    assert dataclasses.replace(meta, name=b"other").name == b"other"


def test_read_meta_of_a_missing_entry_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_meta(os.fsencode(tmp_path / "gone"))


PATTERNS = [
    *default_excludes(),
    "*.log",
    "/var/cache",
    "**/node_modules/",
    "a/**/b",
    "/srv/**/tmp",
    "**",
    "build/",
    "x?z",
    "[!a-c]at",
    "/[ab]*/keep",
    "foo/bar",
]
PATHS = [
    b"/",
    b"/proc",
    b"/proc/1/status",
    b"/var/tmp/x",
    b"/var/cache/apt/pkgcache.bin",
    b"/srv/var/cache",
    b"/home/u/app.log",
    b"/home/u/app.log/inner",
    b"/home/u/node_modules/lodash/index.js",
    b"/home/u/node_modules",
    b"/a/b",
    b"/a/x/y/b",
    b"/srv/tmp",
    b"/srv/1/2/tmp/file",
    b"/build",
    b"/src/build/out.o",
    b"/xyz",
    b"/dir/x\xc3\xa9z",
    b"/cat",
    b"/bat",
    b"/b1/keep",
    b"/c1/keep",
    b"/x/foo/bar",
    b"/x/foo/baz/bar",
    b"/mnt/win/pagefile.sys",
    b"/mnt/win/System Volume Information/x",
    b"/home/u/Thumbs.db",
    b"/data/lost+found",
    b"/data/lost+found/1",
    b"/home/u/a.swap",
    b"relative/swapfile",
    b"//double//slash/./x.log",
    b"/plain/path/file.txt",
]


@pytest.mark.parametrize("case_insensitive", [False, True])
def test_combined_matcher_agrees_with_each_pattern_alone(case_insensitive: bool) -> None:
    # Every subset size: the split into anchored / slash / other alternations must not change
    # which paths match, whichever groups happen to be empty.
    for size in (1, 2, 3, len(PATTERNS)):
        for group in itertools.islice(itertools.combinations(PATTERNS, size), 60):
            combined = ExcludeMatcher(list(group), case_insensitive=case_insensitive)
            single = [ExcludeMatcher([p], case_insensitive=case_insensitive) for p in group]
            for path, is_dir in itertools.product(PATHS, (False, True)):
                expected = any(m.first_match(path, is_dir) is not None for m in single)
                assert combined.matches(path, is_dir) == expected, (group, path, is_dir)
                assert (combined.first_match(path, is_dir) is not None) == expected


def test_empty_matcher_matches_nothing() -> None:
    m = ExcludeMatcher([])
    assert not m and not m.matches(b"/x", False) and not m.matches(b"/x", True)
    assert ExcludeMatcher(["", "*.tmp"]).matches(b"/a.TMP", False) is False
    assert ExcludeMatcher(["*.tmp"], case_insensitive=True).matches(b"/a.TMP", False)
