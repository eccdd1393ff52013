"""Built-in exclusions: swap files by content, CACHEDIR.TAG, default patterns, runtime paths."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.conftest import require_binary

from shadowvault.fs.defaults import (
    CACHEDIR_TAG_SIGNATURE,
    active_swap_files,
    default_excludes,
    has_marker,
    is_cachedir_tagged,
    is_swap_file,
    parse_marker,
    runtime_excluded_paths,
)
from shadowvault.fs.excludes import ExcludeMatcher

SWAP_SIZE = 64 * 1024


def test_real_swap_file_made_by_mkswap(tmp_path: Path) -> None:
    mkswap = require_binary("mkswap")
    swap = tmp_path / "not-named-like-swap.bin"
    swap.write_bytes(b"\0" * SWAP_SIZE)
    swap.chmod(0o600)
    subprocess.run([mkswap, str(swap)], check=True, capture_output=True)
    assert is_swap_file(bytes(swap))
    assert is_swap_file(str(swap))


def test_swap_signatures_written_by_hand(tmp_path: Path) -> None:
    for magic in (b"SWAPSPACE2", b"SWAP-SPACE"):
        f = tmp_path / magic.decode()
        data = bytearray(SWAP_SIZE)
        data[4086:4096] = magic
        f.write_bytes(bytes(data))
        assert is_swap_file(bytes(f)), magic


def test_not_swap(tmp_path: Path) -> None:
    # the magic at the wrong offset
    wrong = tmp_path / "wrong"
    data = bytearray(SWAP_SIZE)
    data[4000:4010] = b"SWAPSPACE2"
    wrong.write_bytes(bytes(data))
    # right offset but too small to be a swap area
    small = tmp_path / "small"
    data = bytearray(8192)
    data[4086:4096] = b"SWAPSPACE2"
    small.write_bytes(bytes(data))
    # a symlink to a swap file is not itself a swap file
    real = tmp_path / "real"
    data = bytearray(SWAP_SIZE)
    data[4086:4096] = b"SWAPSPACE2"
    real.write_bytes(bytes(data))
    link = tmp_path / "link"
    link.symlink_to(real)
    assert is_swap_file(bytes(real))
    for p in (wrong, small, link, tmp_path, tmp_path / "missing"):
        assert not is_swap_file(bytes(p)), p


def test_cachedir_tag(tmp_path: Path) -> None:
    tagged = tmp_path / "tagged"
    tagged.mkdir()
    (tagged / "CACHEDIR.TAG").write_bytes(CACHEDIR_TAG_SIGNATURE + b"\n# made by a test\n")
    exact = tmp_path / "exact"  # no newline after the signature is still valid
    exact.mkdir()
    (exact / "CACHEDIR.TAG").write_bytes(CACHEDIR_TAG_SIGNATURE)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "CACHEDIR.TAG").write_bytes(b"signature: 8a477f597d28d172789f06886806bc55")  # wrong case
    short = tmp_path / "short"
    short.mkdir()
    (short / "CACHEDIR.TAG").write_bytes(CACHEDIR_TAG_SIGNATURE[:-1])
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "CACHEDIR.TAG").symlink_to(tagged / "CACHEDIR.TAG")
    dir_tag = tmp_path / "dirtag"
    (dir_tag / "CACHEDIR.TAG").mkdir(parents=True)
    assert is_cachedir_tagged(bytes(tagged))
    assert is_cachedir_tagged(str(exact))
    for d in (bad, short, linked, dir_tag, tmp_path, tmp_path / "missing"):
        assert not is_cachedir_tagged(bytes(d)), d


def test_markers(tmp_path: Path) -> None:
    (tmp_path / ".nobackup").write_bytes(b"")
    (tmp_path / "TAG").write_bytes(b"HEADER and more")
    assert parse_marker(".nobackup") == (".nobackup", None)
    assert parse_marker("CACHEDIR.TAG") == ("CACHEDIR.TAG", CACHEDIR_TAG_SIGNATURE)
    assert parse_marker("TAG:HEADER") == ("TAG", b"HEADER")
    assert has_marker(bytes(tmp_path), ".nobackup")
    assert has_marker(bytes(tmp_path), "TAG", b"HEADER")
    assert not has_marker(bytes(tmp_path), "TAG", b"OTHER")
    assert not has_marker(bytes(tmp_path), ".absent")


def test_default_patterns_exclude_system_paths_but_keep_mount_points() -> None:
    matcher = ExcludeMatcher(default_excludes())
    excluded = [
        (b"/proc/1/status", False),
        (b"/sys/kernel", True),
        (b"/dev/sda", False),
        (b"/run/lock", True),
        (b"/tmp/x", False),
        (b"/var/tmp/y", False),
        (b"/srv/lost+found", True),
        (b"/swapfile", False),
        (b"/swap.img", False),
        (b"/data/vm.swap", False),
        (b"/mnt/win/pagefile.sys", False),
        (b"/mnt/win/hiberfil.sys", False),
        (b"/mnt/win/swapfile.sys", False),
        (b"/mnt/win/System Volume Information", True),
        (b"/mnt/win/$RECYCLE.BIN/x", False),
        (b"/srv/share/photos/Thumbs.db", False),
    ]
    for path, is_dir in excluded:
        assert matcher.matches(path, is_dir), path
    kept = [
        (b"/proc", True),
        (b"/tmp", True),
        (b"/home/u/tmp/notes.txt", False),
        (b"/srv/app/report.tmp", False),
        (b"/home/u/desktop.ini", False),
        (b"/var/lib/postgresql/data", True),
        (b"/home/u/lost+found", False),  # a regular file with that name is data
        (b"/var/run", False),
    ]
    for path, is_dir in kept:
        assert not matcher.matches(path, is_dir), path
    assert default_excludes() is not default_excludes()


def test_runtime_paths(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    link = tmp_path / "repo-link"
    link.symlink_to(repo)
    paths = runtime_excluded_paths(str(link), None, bytes(tmp_path / "state"))
    assert bytes(link) in paths
    assert bytes(repo) in paths  # resolved spelling too
    assert bytes(tmp_path / "state") in paths
    assert active_swap_files() <= paths


def test_active_swap_files_parses_proc_format(tmp_path: Path) -> None:
    fake = tmp_path / "swaps"
    fake.write_text(
        "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"
        "/dev/sda2                               partition\t8388604\t\t0\t\t-2\n"
        "/swap\\040file                           file\t\t1048572\t\t0\t\t-3\n"
    )
    assert active_swap_files(str(fake)) == {b"/swap file"}
    assert active_swap_files(str(tmp_path / "none")) == set()
    assert os.path.exists("/proc/swaps") or active_swap_files() == set()
