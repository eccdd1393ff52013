"""Unchanged subtrees found ahead of the walk by forked processes (incremental backups).

Why: in an incremental backup of a tree that barely changed, the walk itself is the cost: per entry
an ``lstat`` and a ``listxattr``, the selection rules, the parent snapshot's tree decoded, and the
comparison, all in the walking thread under the GIL, so on one core (issue 10: 20,000 files took
1.6 s, restic 1.3 s on both cores). Here one verifier process per CPU, forked before the session
starts any thread, walks the subtrees below a directory the session opens, ahead of it, and answers
per directory whether the session's walk would give it the parent snapshot's tree: every entry
selected the same, every file reused (``filesaver.backup_file``'s conditions: same size, times and
inode, no stored outcome, its blobs indexed) and every node equal (``nodes.equals_meta_node``, the
comparison ``tree_builder`` makes). The same functions decide in both places, so the verifier adds
no second definition of "unchanged". The session then takes such a directory's parent tree id with
a node made from its own fresh ``lstat`` of the directory, and does not walk it.

Anything a verifier cannot decide alone is "changed": SQLite companions in a directory (database
groups), a directory the selection does not enter (mount points), a read error, a tree it cannot
read. A changed directory is walked by the session as before, and the verifier's answers for the
directories below it save the session from asking again. A verifier that dies only means the
session walks what it had.

Only for live reads of a local repository (no volume snapshot: a snapshot's paths are not the
originals; a remote repository's client cannot be used in a forked process, ``repo.forkread``), and
not with ``--force``, a ``sqlite`` set, database dumps in the run (they add exclusions once threads
run, ``BackupSession._prescan``) or when every unchanged file must be reported by name
(``BackupOptions.unchanged_by_name``): a subtree taken whole is reported as one ``SubtreeUnchanged``
(a count and a size), so that memory stays independent of the tree's size. Per directory answered
and not yet walked past, the session keeps its path and four numbers.
"""

from __future__ import annotations

import contextlib
import marshal
import os
import signal
import stat
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait

from shadowvault.errors import ShadowvaultError
from shadowvault.fs import Selector, list_dir, read_meta
from shadowvault.openfiles.writers import COMPANION_SUFFIXES
from shadowvault.repo import Node
from shadowvault.repo.forkread import ForkedTrees

from .filesaver import renamed
from .forked import READY, fork_worker, handshake, reap
from .nodes import equals_meta_node, node_outcome, unchanged

__all__ = ["Prescan", "Subtree"]

_OUTSTANDING = 1
"""Requests sent to one verifier and not answered yet; the rest wait in the session, so that the
first verifier to finish takes the next (with two each, one verifier had a long subtree and the
next request behind it while the other sat idle)."""

# The directory as a verifier saw it before listing it: (inode, mtime, ctime) in ns.
_Ident = tuple[int, int, int]
_NO_IDENT: _Ident = (0, 0, 0)

# (directory path, unchanged, files, bytes, the directory as seen) as the verifiers send them.
_Answer = tuple[bytes, bool, int, int, _Ident]


@dataclass(frozen=True)
class Subtree:
    """A directory whose tree is the parent snapshot's: how many files and bytes it holds, and
    the directory's (inode, mtime, ctime) when the verifier listed it."""

    files: int
    size: int
    ident: _Ident

    def seen_as(self, inode: int, mtime_ns: int, ctime_ns: int) -> bool:
        """True when the session's own ``lstat`` of the directory is the one the verifier saw: no
        entry was added, removed or renamed in it since (its mtime and ctime would have moved),
        so the verifier's listing is the one the session would have made."""
        return self.ident == (inode, mtime_ns, ctime_ns)


@dataclass
class _Worker:
    pid: int
    conn: Connection
    sent: deque[bytes] = field(default_factory=deque)
    alive: bool = True


class Prescan:
    """The verifier processes of one session and their answers (see the module docstring).

    Fork it before the session starts any thread: a lock another thread holds at the fork stays
    held in the child (``engine.forked``).
    """

    def __init__(
        self,
        processes: int,
        trees: ForkedTrees,
        first_tree: bytes,
        selector: Selector,
        is_internal: Callable[[bytes, bytes], bool],
    ) -> None:
        self._workers: list[_Worker] = []
        self._queue: deque[tuple[bytes, bytes]] = deque()  # (path, parent tree id) not sent yet
        self._asked: set[bytes] = set()  # queued or sent, not answered
        self._answers: dict[bytes, Subtree | None] = {}
        self.selector = selector  # the walk must select with the very same rules

        def serve(conn: Connection) -> None:
            _serve(conn, trees, first_tree, selector, is_internal)

        for _ in range(processes):
            pid, ours = fork_worker(serve, [w.conn for w in self._workers])
            self._workers.append(_Worker(pid, ours))
        for w in self._workers:
            w.alive = handshake(w.pid, w.conn)

    # ----- the session's side -------------------------------------------------------------------

    def submit(self, directory: bytes, names: list[bytes], parent_nodes: dict[str, Node]) -> None:
        """The session opened ``directory`` (live, listed as ``names``): have the subdirectories it
        had in the parent snapshot verified, unless they were already."""
        answers, asked = self._answers, self._asked
        for name in names:
            prev = parent_nodes.get(os.fsdecode(name))
            if prev is None or prev.type != "dir" or prev.subtree is None:
                continue
            path = directory + b"/" + name
            if path not in answers and path not in asked:
                asked.add(path)
                self._queue.append((path, prev.subtree))
        self.pump()

    def pump(self) -> None:
        """Send waiting requests to verifiers with room, and take in answers that arrived."""
        for w in self._workers:
            while w.alive and w.sent and w.conn.poll(0):
                self._receive(w)
        self._send()

    def answer(self, directory: bytes) -> Subtree | None:
        """The subtree at ``directory`` when its tree is the parent snapshot's, None when the
        session must walk it (changed, or not verified). Waits for an answer that is due."""
        while directory in self._asked:
            self._send()
            busy = [w.conn for w in self._workers if w.alive and w.sent]
            if not busy:  # no verifier left to answer it
                self._asked.discard(directory)
                break
            for conn in wait(busy):
                w = next(w for w in self._workers if w.conn is conn)
                self._receive(w)
        return self._answers.pop(directory, None)

    def close(self) -> None:
        """End the verifiers and reap them."""
        for w in self._workers:
            w.conn.close()
            w.alive = False
        reap(w.pid for w in self._workers)
        self._workers = []

    def _send(self) -> None:
        queue = self._queue
        while queue:
            idle = [w for w in self._workers if w.alive and len(w.sent) < _OUTSTANDING]
            if not idle:
                return
            w = min(idle, key=lambda w: len(w.sent))
            path, tree_id = queue.popleft()
            try:
                w.conn.send_bytes(marshal.dumps((path, tree_id)))
            except OSError:
                queue.appendleft((path, tree_id))
                self._lost(w)
                continue
            w.sent.append(path)

    def _receive(self, w: _Worker) -> None:
        try:
            answers: list[_Answer] = marshal.loads(w.conn.recv_bytes())
        except (EOFError, OSError, ValueError):
            self._lost(w)
            return
        w.sent.popleft()
        for path, same, files, size, ident in answers:
            self._answers[path] = Subtree(files, size, ident) if same else None
            self._asked.discard(path)

    def _lost(self, w: _Worker) -> None:
        """A verifier died: what it had is walked by the session."""
        w.alive = False
        for path in w.sent:
            self._asked.discard(path)
        w.sent.clear()
        if not any(x.alive for x in self._workers):
            self._asked.clear()
            self._queue.clear()


# ----- in a verifier ----------------------------------------------------------------------------


def _serve(
    conn: Connection,
    trees: ForkedTrees,
    first_tree: bytes,
    selector: Selector,
    is_internal: Callable[[bytes, bytes], bool],
) -> None:
    """A verifier's life: answer requests until the connection closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the session handles Ctrl-C and closes us
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    # The first piece of work before the handshake: a tree decrypted (OpenSSL) and its pack read.
    with contextlib.suppress(Exception):
        trees.load_tree(first_tree)
    conn.send_bytes(READY)
    while True:
        try:
            path, tree_id = marshal.loads(conn.recv_bytes())
        except (EOFError, OSError):
            return
        try:
            answers = _verify(path, tree_id, trees, selector, is_internal)
        except Exception:  # whatever went wrong, the session walks it itself
            answers = [(path, False, 0, 0, _NO_IDENT)]
        conn.send_bytes(marshal.dumps(answers))


@dataclass
class _Frame:
    path: bytes
    old: dict[str, Node]
    names: list[bytes]
    ident: _Ident
    at: int = 0
    same: bool = True  # every entry so far as in the parent snapshot
    own: bool = True  # this directory's own node (in its parent) as in the parent snapshot
    seen: int = 0
    files: int = 0
    size: int = 0
    below: list[_Answer] = field(default_factory=list)  # answers for changed directories' children


def _verify(
    root: bytes,
    tree_id: bytes,
    trees: ForkedTrees,
    selector: Selector,
    is_internal: Callable[[bytes, bytes], bool],
) -> list[_Answer]:
    """Answers for ``root`` and, below directories found changed, for their subdirectories.

    Iterative (explicit stack), like the session's walk: a deep tree must not exhaust Python's
    recursion limit. A directory found changed is still walked to its end, so that the session,
    which walks it, finds its subdirectories answered.
    """
    first = _open(root, tree_id, trees)
    if first is None:
        return [(root, False, 0, 0, _NO_IDENT)]
    stack = [first]
    while True:
        f = stack[-1]
        if f.at == len(f.names):
            stack.pop()
            same = f.same and f.seen == len(f.old)
            mine: list[_Answer] = [(f.path, same, f.files, f.size, f.ident)]
            if not same:
                mine.extend(f.below)
            if not stack:
                return mine
            up = stack[-1]
            if same and f.own:
                up.files += f.files
                up.size += f.size
            else:
                up.same = False
            up.below.extend(mine)
            continue
        name = f.names[f.at]
        f.at += 1
        path = f.path + b"/" + name
        try:
            meta = renamed(read_meta(path), name)
        except OSError:
            f.same = False
            continue
        if not selector.selected(path, meta) or is_internal(path, name):
            continue
        f.seen += 1
        prev = f.old.get(os.fsdecode(name))
        if prev is None:
            f.same = False
        elif meta.kind == "dir":
            child = None
            if prev.type == "dir" and prev.subtree is not None and selector.descend(path, meta):
                child = _open(path, prev.subtree, trees)
            if child is None:
                f.same = False
            else:
                child.own = equals_meta_node(prev, meta, subtree=prev.subtree)
                stack.append(child)
        elif meta.kind == "file":
            content = prev.content or []
            if (
                unchanged(prev, meta)
                and node_outcome(prev) is None
                and all(trees.has_data(b) for b in content)
                and equals_meta_node(prev, meta, content=content)
            ):
                f.files += 1
                f.size += meta.size
            else:
                f.same = False
        elif not equals_meta_node(prev, meta):
            f.same = False


def _open(path: bytes, tree_id: bytes, trees: ForkedTrees) -> _Frame | None:
    """A frame for a directory and its parent tree; None when either cannot be read."""
    try:
        # Before the listing: a change after this lstat shows in the session's later one.
        st = os.lstat(path)
        if not stat.S_ISDIR(st.st_mode):
            return None
        names = list_dir(path)
        old = {n.name: n for n in trees.load_tree(tree_id).nodes}
    except (OSError, LookupError, ValueError, ShadowvaultError):
        return None
    f = _Frame(path, old, names, (st.st_ino, st.st_mtime_ns, st.st_ctime_ns))
    # Database groups: a companion is never taken from the parent on its own, nor its database
    # (``dbcapture``); the session decides such a directory itself.
    if any(n.endswith(COMPANION_SUFFIXES) for n in names):
        f.same = False
    return f
