"""Test helpers: build a tree with every file type, describe a tree, run the CLI and restic."""

from __future__ import annotations

import contextlib
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

PASSWORD = "correct horse battery staple"
SRC = Path(__file__).resolve().parent.parent / "src"


def env(repo: Path | None = None, **extra: str) -> dict[str, str]:
    """Environment for shadowvault and restic child processes."""
    e = dict(os.environ)
    # Child processes run this checkout's code, whatever copy of shadowvault is installed.
    e["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), e.get("PYTHONPATH", "")]))
    e.pop("SHADOWVAULT_CONFIG", None)
    e["SHADOWVAULT_PASSWORD"] = PASSWORD
    e["RESTIC_PASSWORD"] = PASSWORD
    e["RESTIC_CACHE_DIR"] = "/tmp/restic-test-cache"
    if repo is not None:
        e["SHADOWVAULT_REPOSITORY"] = str(repo)
        e["RESTIC_REPOSITORY"] = str(repo)
    e.update(extra)
    return e


def sv(
    *args: str,
    repo: Path | None = None,
    check: bool = True,
    timeout: float = 240,
    env_extra: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m shadowvault ARGS`` and return the completed process.

    One that outlives ``timeout`` fails the test with every thread's stack of it and of its
    forked workers (``faulthandler`` on SIGABRT), so a rare hang says where it waited. The default
    ends before pytest's own 300 s timeout, which would only show the test waiting for the child."""
    e = env(repo, **(env_extra or {}))
    e["PYTHONFAULTHANDLER"] = "1"
    cmd = [sys.executable, "-m", "shadowvault", *args]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=e) as proc:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _abort_tree(proc.pid)
            out, err = proc.communicate()
            raise AssertionError(
                f"shadowvault {' '.join(args)} still ran after {timeout} s; its stacks:\n{out}\n{err}"
            ) from None
    p = subprocess.CompletedProcess(cmd, proc.returncode, out, err)
    if check and p.returncode != 0:
        raise AssertionError(f"shadowvault {' '.join(args)} exited {p.returncode}\n{p.stdout}\n{p.stderr}")
    return p


def _abort_tree(pid: int) -> None:
    """SIGABRT ``pid`` and its descendants, children first (their stacks go to the shared stderr)."""

    def children(p: int) -> list[int]:
        try:
            tasks = Path(f"/proc/{p}/task").iterdir()
            return [int(c) for t in tasks for c in (t / "children").read_text().split()]
        except OSError:
            return []

    order: list[int] = []
    todo = [pid]
    while todo:
        p = todo.pop()
        order.append(p)
        todo.extend(children(p))
    for p in reversed(order):
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, signal.SIGABRT)
        time.sleep(0.2)  # one stack dump at a time on the shared stderr


def restic(
    *args: str, repo: Path, check: bool = True, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run the real restic binary against ``repo``."""
    p = subprocess.run(
        ["restic", "--no-cache", *args], capture_output=True, text=True, env=env(repo), timeout=timeout
    )
    if check and p.returncode != 0:
        raise AssertionError(f"restic {' '.join(args)} exited {p.returncode}\n{p.stdout}\n{p.stderr}")
    return p


def add_small_files(root: Path, dirs: int) -> None:
    """``dirs`` directories ``many-N`` of 150 random files of 0-2,993 bytes each under ``root``."""
    for d in range(dirs):
        sub = root / f"many-{d}"
        sub.mkdir()
        for i in range(150):
            (sub / f"f{i:03d}").write_bytes(os.urandom(i * 7 % 3000))


def make_full_tree(root: Path, *, devices: bool) -> None:
    """Every file type the engine handles, odd names, xattrs, hard links, sparse and empty files."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "plain.txt").write_text("hello world\n" * 100)
    (root / "empty").write_bytes(b"")
    (root / "dir" / "sub").mkdir(parents=True)
    (root / "dir" / "sub" / "deep.bin").write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    (root / "dir" / "compressible.log").write_bytes(b"line of log text\n" * 200_000)
    (root / "ünïcödé 名前.txt").write_text("unicode name\n")
    (root / "with space & 'quotes'").write_text("odd name\n")
    os.makedirs(os.fsencode(root) + b"/raw-\xff\xfe-dir", exist_ok=True)
    with open(os.fsencode(root) + b"/raw-\xff\xfe-dir/latin1-\xe9t\xe9.txt", "wb") as f:
        f.write(b"non-utf8 name\n")
    os.symlink("plain.txt", root / "link-to-plain")
    os.symlink("/nonexistent/target", root / "dangling-link")
    os.link(root / "plain.txt", root / "dir" / "hardlink-to-plain")
    os.mkfifo(root / "fifo")
    with open(root / "sparse.img", "wb") as f:
        f.write(b"start")
        f.seek(64 * 1024 * 1024)
        f.write(b"end")
    os.setxattr(root / "plain.txt", "user.comment", b"an extended attribute")
    os.setxattr(root / "dir", "user.dirattr", b"\x00\x01binary")
    os.chmod(root / "dir" / "sub", 0o750)
    os.chmod(root / "empty", 0o4755)
    (root / "ro.txt").write_text("read only\n")
    os.chmod(root / "ro.txt", 0o444)
    if devices:
        os.mknod(root / "null-like", stat.S_IFCHR | 0o644, os.makedev(1, 3))
        os.chown(root / "dir" / "compressible.log", 1234, 5678)
    # Deterministic times, set last (children first so directory times stick).
    for dirpath, dirnames, filenames in os.walk(os.fsencode(root), topdown=False):
        for name in dirnames + filenames:
            os.utime(
                os.path.join(dirpath, name),
                ns=(1_600_000_000_123_456_789, 1_500_000_000_987_654_321),
                follow_symlinks=False,
            )


def describe(root: Path, *, times: bool = True) -> dict[bytes, dict[str, Any]]:
    """Content and metadata of every entry under ``root`` (keyed by relative bytes path)."""
    out: dict[bytes, dict[str, Any]] = {}
    broot = os.fsencode(root)
    inodes: dict[int, bytes] = {}
    # An explicit stack, not os.walk (recursive in Python 3.11): trees 1,500 levels deep are compared.
    stack = [broot]
    while stack:
        dirpath = stack.pop()
        names = sorted(os.listdir(dirpath))
        subdirs = [os.path.join(dirpath, n) for n in names]
        stack.extend(d for d in subdirs if stat.S_ISDIR(os.lstat(d).st_mode))
        for name in names:
            p = os.path.join(dirpath, name)
            rel = os.path.relpath(p, broot)
            st = os.lstat(p)
            d: dict[str, Any] = {"mode": st.st_mode, "uid": st.st_uid, "gid": st.st_gid}
            if times and not stat.S_ISDIR(st.st_mode):
                d["mtime"] = st.st_mtime_ns
            if stat.S_ISREG(st.st_mode):
                with open(p, "rb") as f:
                    d["sha"] = __import__("hashlib").sha256(f.read()).hexdigest()
                d["size"] = st.st_size
                if st.st_nlink > 1:
                    d["linked_to"] = inodes.setdefault(st.st_ino, rel)
            elif stat.S_ISLNK(st.st_mode):
                d["target"] = os.readlink(p)
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                d["rdev"] = st.st_rdev
            if not stat.S_ISLNK(st.st_mode):
                d["xattrs"] = {n: os.getxattr(p, n) for n in sorted(os.listxattr(p)) if n.startswith("user.")}
            out[rel] = d
    return out


def subtree_at(repo: Any, root: bytes, path: Path) -> bytes:
    """The tree recorded for directory ``path`` below the snapshot root tree ``root`` (``repo``: an
    open ``shadowvault.repo.Repository``). Tests compare this, not roots: a root also records the
    directories above the source (/tmp …), which other processes change between two backups."""
    tree = root
    for part in path.parts[1:]:
        node = repo.load_tree(tree).find(part)
        assert node is not None and node.subtree is not None, part
        tree = node.subtree
    return tree


def repo_activity_db(state_home: Path, repo: Path) -> Path:
    """The activity log of the local repository ``repo`` under ``XDG_STATE_HOME=state_home``
    (one log per repository, named by its id)."""
    from shadowvault.engine.activity import log_path
    from shadowvault.repo import LocalBackend, Repository

    r = Repository.open(LocalBackend(repo), PASSWORD)
    try:
        return log_path(state_home / "shadowvault", str(r.config["id"]))
    finally:
        r.close()
