"""An incremental backup reuses a parent's tree exactly when the directory is the same.

The tree builder no longer builds and compares a ``Node`` for every reused file: it compares the
file's metadata with the parent's node field by field (``nodes.equals_meta_node``). These tests
pin that short-cut: any change of one entry's metadata gives its directory (and the ancestors) a
new tree with the right node, siblings keep their trees, and every incremental snapshot holds
exactly the nodes a backup without a parent holds.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import socket
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import require, require_binary, require_root
from shadowvault.engine.backup import BackupOptions, BackupSession
from shadowvault.engine.events import ListSink
from shadowvault.engine.nodes import equals_meta_node, node_from_meta, unchanged
from shadowvault.fs import FileMeta, read_meta
from shadowvault.repo import LocalBackend, Node, Repository
from treeutil import PASSWORD, restic

FAST_KDF = (1024, 8, 1)


def _open(path: Path) -> Repository:
    repo = Repository.open(LocalBackend(path), PASSWORD)
    repo.load_index()
    return repo


def backup(repo_path: Path, src: Path, *, force: bool = False) -> tuple[bytes, int]:
    """One API session; returns (root tree id, files read)."""
    repo = _open(repo_path)
    try:
        with repo.lock():
            result = BackupSession(repo, BackupOptions(sources=[str(src)], force=force), ListSink()).run()
        assert result.exit_code == 0 and result.snapshot_id is not None
        return repo.load_snapshot(result.snapshot_id).tree, result.counts.files_read
    finally:
        repo.close()


def nodes_below(repo_path: Path, tree_id: bytes, prefix: str = "") -> Iterator[tuple[str, Node, bytes]]:
    """(path, node, id of the tree holding it) for every node below ``tree_id``."""
    repo = _open(repo_path)
    try:
        stack = [(prefix, tree_id)]
        while stack:
            where, tid = stack.pop()
            for node in repo.load_tree(tid).nodes:
                path = f"{where}/{node.name}"
                yield path, node, tid
                if node.type == "dir" and node.subtree is not None:
                    stack.append((path, node.subtree))
    finally:
        repo.close()


def tree_of(repo_path: Path, root: bytes, directory: Path) -> bytes:
    """The tree id recorded for ``directory`` in the snapshot with root tree ``root``."""
    for path, node, _ in nodes_below(repo_path, root):
        if path == str(directory):
            assert node.subtree is not None
            return node.subtree
    raise AssertionError(f"{directory} not in the snapshot")


def node_at(repo_path: Path, root: bytes, path: Path) -> Node:
    found = [n for p, n, _ in nodes_below(repo_path, root) if p == str(path)]
    assert len(found) == 1, path
    return found[0]


def comparable(repo_path: Path, root: bytes, src: Path) -> dict[str, Node]:
    """The nodes of ``src`` and below by path, directories without their subtree id (compared
    through their children). The directories above ``src`` (/tmp …) change under other tests."""
    return {
        p: dataclasses.replace(n, subtree=None) if n.type == "dir" else n
        for p, n, _ in nodes_below(repo_path, root)
        if p == str(src) or p.startswith(f"{src}/")
    }


@pytest.fixture
def src(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    for d in ("a", "b", "c"):
        (root / d).mkdir(parents=True)
        for i in range(3):
            (root / d / f"f{i}").write_bytes(f"{d}{i}".encode() * (100 + i))
    (root / "c" / "link").symlink_to("f0")
    os.mkfifo(root / "c" / "fifo")
    (root / "top.txt").write_text("top")
    return root


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    Repository.init(LocalBackend(path), PASSWORD, kdf=FAST_KDF).close()
    return path


def pin_dir_atimes(src: Path) -> None:
    """Put every directory's atime a day ahead, so listing it no longer moves it (relatime).

    A change inside a directory makes its next listing update its atime; a backup without a
    parent that runs after the incremental one would then see another atime than it did.
    """
    ahead = 86400 * 10**9
    for d in [src, *(p for p in src.rglob("*") if p.is_dir() and not p.is_symlink())]:
        st = d.stat()
        os.utime(d, ns=(st.st_mtime_ns + ahead, st.st_mtime_ns))


def settle(repo_path: Path, src: Path) -> bytes:
    """Back up twice; the second run must reuse the whole tree (restic stores atime as mtime, so
    the first run's listings and readlinks cannot change it); returns that run's root tree."""
    first, _ = backup(repo_path, src)
    root, read = backup(repo_path, src)
    assert read == 0
    assert tree_of(repo_path, root, src) == tree_of(repo_path, first, src), "an unchanged tree got a new tree"
    return root


def _set_atime_only(path: Path) -> None:
    # Reading a file whose atime is not newer than its mtime moves the atime (relatime) and
    # nothing else: size, mtime, ctime and inode stay, so the file still counts as unchanged.
    with open(path, "rb") as f:
        f.read()


def _prepare_atime(path: Path) -> None:
    st = path.stat()
    os.utime(path, ns=(st.st_mtime_ns - 10**9, st.st_mtime_ns))


CHANGES: dict[str, tuple[Callable[[Path], None], Callable[[Node, Path], bool]]] = {
    "chmod": (lambda p: p.chmod(0o600), lambda n, p: n.mode & 0o777 == 0o600),
    "chown": (lambda p: os.chown(p, 4321, 4321), lambda n, p: (n.uid, n.gid) == (4321, 4321)),
    "xattr": (
        lambda p: os.setxattr(p, "user.k", b"v"),
        lambda n, p: n.extended_attributes == [("user.k", b"v")],
    ),
    "hardlink": (lambda p: os.link(p, p.parent.parent / "second-link"), lambda n, p: n.links == 2),
    "touch": (lambda p: os.utime(p, ns=(1, 2)), lambda n, p: (n.atime, n.mtime) == (2, 2)),
}


def test_an_atime_only_change_keeps_every_tree(repo: Path, src: Path) -> None:
    # restic's default (no --with-atime) stores atime as mtime: reading a file moves only its atime
    # (relatime), which is neither a change in restic's sense nor a reason for a new tree.
    target = src / "a" / "f1"
    _prepare_atime(target)
    root = settle(repo, src)
    st = target.stat()
    _set_atime_only(target)
    after = target.stat()
    require(after.st_atime_ns != st.st_atime_ns, "the file system does not update atimes on read")
    assert (after.st_ctime_ns, after.st_mtime_ns) == (st.st_ctime_ns, st.st_mtime_ns)
    new_root, read = backup(repo, src)
    assert (tree_of(repo, new_root, src), read) == (tree_of(repo, root, src), 0)
    assert node_at(repo, new_root, target).atime == st.st_mtime_ns


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_one_metadata_change_gives_its_directory_a_new_tree(
    change: str, repo: Path, src: Path, tmp_path: Path
) -> None:
    target = src / "a" / "f1"
    apply, holds = CHANGES[change]
    if change == "chown":
        require_root()
    if change == "xattr":
        try:
            os.setxattr(src / "top.txt", "user.probe", b"1")
        except OSError:
            require(False, "needs user xattrs on the test file system")
    root = settle(repo, src)
    before = {d: tree_of(repo, root, src / d) for d in ("a", "b", "c")}
    apply(target)
    pin_dir_atimes(src)
    new_root, read = backup(repo, src)
    assert tree_of(repo, new_root, src) != tree_of(repo, root, src)
    assert tree_of(repo, new_root, src / "a") != before["a"]
    assert tree_of(repo, new_root, src / "b") == before["b"]
    assert tree_of(repo, new_root, src / "c") == before["c"]
    node = node_at(repo, new_root, target)
    assert holds(node, target), node
    assert read > 0  # the changed file is read again (restic: ctime moved)
    # Whatever was reused, the snapshot is the one a backup without a parent makes.
    forced, _ = backup(repo, src, force=True)
    assert comparable(repo, new_root, src) == comparable(repo, forced, src)


def test_rename_add_and_remove(repo: Path, src: Path) -> None:
    root = settle(repo, src)
    before_b = tree_of(repo, root, src / "b")
    (src / "a" / "f1").rename(src / "a" / "g1")
    (src / "c" / "new").write_text("new")
    (src / "c" / "f2").unlink()
    pin_dir_atimes(src)
    new_root, read = backup(repo, src)
    names_a = {p.rsplit("/", 1)[1] for p, _, _ in nodes_below(repo, tree_of(repo, new_root, src / "a"))}
    names_c = {p.rsplit("/", 1)[1] for p, _, _ in nodes_below(repo, tree_of(repo, new_root, src / "c"))}
    assert names_a == {"f0", "g1", "f2"}
    assert names_c == {"f0", "f1", "new", "link", "fifo"}
    assert tree_of(repo, new_root, src / "b") == before_b
    assert read == 2  # the renamed file (its ctime moved) and the new one
    forced, _ = backup(repo, src, force=True)
    assert comparable(repo, new_root, src) == comparable(repo, forced, src)


def test_unchanged_tree_is_reused_with_every_kind_of_entry(repo: Path, src: Path) -> None:
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(src / "c" / "sock"))
    sock.close()
    root = settle(repo, src)
    again, read = backup(repo, src)
    assert tree_of(repo, again, src) == tree_of(repo, root, src) and read == 0


def test_parent_written_by_restic(repo: Path, src: Path, tmp_path: Path) -> None:
    require_binary("restic")
    theirs = tmp_path / "restic-repo"
    pin_dir_atimes(src)
    restic("init", repo=theirs)
    restic("backup", str(src), repo=theirs)
    # shadowvault picks restic's snapshot as the parent (same host and paths) and still writes
    # exactly the nodes a backup without a parent writes.
    incremental, read = backup(theirs, src)
    assert read == 0, "restic's nodes did not let unchanged files be reused"
    forced, _ = backup(theirs, src, force=True)
    assert comparable(theirs, incremental, src) == comparable(theirs, forced, src)
    again, read = backup(theirs, src)
    assert tree_of(theirs, again, src) == tree_of(theirs, incremental, src)
    restic("check", "--read-data", repo=theirs)
    shutil.rmtree(theirs)


def _metas(tmp_path: Path) -> list[FileMeta]:
    (tmp_path / "file").write_bytes(b"x" * 10)
    (tmp_path / "dir").mkdir()
    (tmp_path / "link").symlink_to("file")
    os.mkfifo(tmp_path / "fifo")
    metas = [read_meta(os.fsencode(tmp_path / n)) for n in ("file", "dir", "link", "fifo")]
    metas.append(read_meta(b"/dev/null"))
    block = dataclasses.replace(metas[-1], kind="dev", mode=stat.S_IFBLK | 0o600, rdev=2049)
    return [*metas, block, dataclasses.replace(metas[0], xattrs=[("user.a", b"1")], name=b"caf\xe9")]


def _other(value: Any) -> Any:
    """A different value of the same kind, for perturbing one node field."""
    if isinstance(value, bool) or value is None:
        return b"\x01" * 32
    if isinstance(value, int):
        return value + 1
    if isinstance(value, str):
        return value + "x"
    if isinstance(value, bytes):
        return value + b"\x00"
    if isinstance(value, list):
        return [*value, ("user.z", b"z")] if not value or isinstance(value[0], tuple) else [*value, b"\x02"]
    if isinstance(value, dict):
        return {**value, "future": 1}
    raise AssertionError(f"no perturbation for {value!r}")


def test_field_comparison_matches_building_the_node(tmp_path: Path) -> None:
    for meta in _metas(tmp_path):
        variants: list[dict[str, Any]] = [{}]
        if meta.kind == "file":
            variants += [{"content": [b"\x07" * 32]}, {"content": []}]
        if meta.kind == "dir":
            variants.append({"subtree": b"\x09" * 32})
        for kw in variants:
            built = node_from_meta(meta, **kw)
            assert equals_meta_node(built, meta, **kw)
            for f in dataclasses.fields(Node):
                changed = dataclasses.replace(built, **{f.name: _other(getattr(built, f.name))})
                assert changed != built
                assert not equals_meta_node(changed, meta, **kw), (meta.kind, f.name)
        # A file's content list of None (a restic file node written with "content": null) is
        # not the empty list a rebuilt node carries.
        if meta.kind == "file":
            assert not equals_meta_node(dataclasses.replace(node_from_meta(meta), content=None), meta)


def test_unchanged_is_restics_rule(tmp_path: Path) -> None:
    for meta in _metas(tmp_path):
        base = node_from_meta(meta, content=[])
        variants = [base, dataclasses.replace(base, type="file"), dataclasses.replace(base, type="dir")]
        for field in ("size", "mtime", "ctime", "inode", "atime", "mode", "uid"):
            variants.append(dataclasses.replace(base, **{field: getattr(base, field) + 1}))
        for node in variants:
            expected = (
                meta.kind == "file"
                and node.type == "file"
                and (node.size, node.mtime, node.ctime, node.inode)
                == (meta.size, meta.mtime_ns, meta.ctime_ns, meta.inode)
            )
            assert unchanged(node, meta) == expected, (meta.kind, node)
    (tmp_path / "again").mkdir()
    file_meta = _metas(tmp_path / "again")[0]
    assert file_meta.kind == "file" and unchanged(node_from_meta(file_meta), file_meta)


def test_two_backups_of_a_fresh_unchanged_tree_give_one_tree(tmp_path: Path) -> None:
    # Made just before the first backup, so every symlink still has atime == mtime and the first
    # readlink moves its atime (relatime): the node must hold the time after that read.
    repo_path = tmp_path / "repo"
    restic("init", repo=repo_path)
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    (src / "f").write_bytes(b"data" * 100)
    os.link(src / "f", src / "d" / "hard")
    for i in range(5):
        (src / f"link{i}").symlink_to("f")
        (src / "d" / f"dangling{i}").symlink_to(f"nowhere{i}")
    os.mkfifo(src / "fifo")
    try:
        os.setxattr(src / "f", "user.note", b"kept")
    except OSError as e:
        require(False, f"user xattrs unsupported here: {e}")
    # The directories above src (/tmp ...) change under other tests, so compare src's own tree.
    first, _ = backup(repo_path, src)
    second, read = backup(repo_path, src)
    assert tree_of(repo_path, second, src) == tree_of(repo_path, first, src)
    assert read == 0
