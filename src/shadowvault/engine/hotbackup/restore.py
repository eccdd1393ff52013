"""``restore SNAPSHOT --database NAME [--to-database NEW]``: a stored dump piped into its server.

The dump is found under the snapshot's ``/.shadowvault/<type>/<host>-<port>/`` and its blobs are
written one at a time into ``pg_restore --clean --if-exists --exit-on-error`` or ``mariadb``
(streamed: memory holds one blob, no temporary file). The target server is the configured set's
(``--set``) or the one the dump came from (host and port from its directory name, credentials
from the tools' own files: ``~/.pgpass``, ``~/.my.cnf``). A missing target database is created.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass

from shadowvault.config.databases import DatabaseServer
from shadowvault.errors import FatalError, UsageError
from shadowvault.repo import BlobType, Node, Repository

from .credentials import PrivateDir
from .dumps import VIRTUAL_ROOT, make_tool
from .mariadb import cause as mariadb_cause
from .postgresql import ServerUnavailable
from .postgresql import cause as pg_cause
from .stream import ChildProcess, database_of

__all__ = ["DatabaseRestore", "StoredDump", "find_dumps", "restore_database"]

_EXTENSIONS = {"postgresql": ".dump", "mariadb": ".sql"}


@dataclass(frozen=True)
class StoredDump:
    """A dump file of a snapshot: its virtual path, server type and ``host-port`` label."""

    path: str
    type: str
    label: str
    database: str
    node: Node


@dataclass(frozen=True)
class DatabaseRestore:
    """What a database restore did."""

    source: str
    target: str
    bytes: int
    duration: float


def _children(repo: Repository, tree: bytes | None) -> dict[str, Node]:
    if tree is None:
        return {}
    return {n.name: n for n in repo.load_tree(tree).nodes}


def find_dumps(repo: Repository, snapshot_ref: str) -> tuple[str, list[StoredDump]]:
    """Every database dump stored in the snapshot (``snapshot id``, dumps)."""
    snapshot_id, snap = repo.find_snapshot(snapshot_ref)
    top = _children(repo, snap.tree).get(VIRTUAL_ROOT.strip("/"))
    found: list[StoredDump] = []
    for kind, kind_node in _children(repo, top.subtree if top else None).items():
        ext = _EXTENSIONS.get(kind)
        if ext is None or kind_node.type != "dir":
            continue
        for label, host_node in _children(repo, kind_node.subtree).items():
            for name, node in _children(repo, host_node.subtree).items():
                if node.type == "file" and name.endswith(ext):
                    path = f"{VIRTUAL_ROOT}/{kind}/{label}/{name}"
                    found.append(StoredDump(path, kind, label, database_of(name, ext), node))
    return snapshot_id, found


def _server_of(dump: StoredDump, configured: DatabaseServer | None) -> DatabaseServer:
    if configured is not None:
        if configured.type != dump.type:
            raise UsageError(f"{dump.path} is a {dump.type} dump but the set's server is {configured.type}")
        return configured
    host, _, port = dump.label.rpartition("-")
    return DatabaseServer(dump.type, host=host or None, port=int(port) if port.isdigit() else 0)


def restore_database(
    repo: Repository,
    snapshot_ref: str,
    database: str,
    *,
    to_database: str | None = None,
    server: DatabaseServer | None = None,
) -> DatabaseRestore:
    """Pipe the stored dump of ``database`` into its server (as ``to_database`` if given)."""
    snapshot_id, dumps = find_dumps(repo, snapshot_ref)
    matches = [d for d in dumps if d.database == database and (server is None or d.type == server.type)]
    if not matches:
        known = ", ".join(sorted({d.path for d in dumps})) or "none"
        raise UsageError(f"snapshot {snapshot_id[:8]} holds no dump of database {database!r}; dumps: {known}")
    if len(matches) > 1:
        where = ", ".join(d.path for d in matches)
        raise UsageError(
            f"database {database!r} was dumped from several servers ({where}): name one with --set"
        )
    dump = matches[0]
    target = to_database or database
    start = time.monotonic()
    with PrivateDir() as private:
        tool = make_tool(_server_of(dump, server), private)
        try:
            tool.create_database(target)
        except ServerUnavailable as e:
            raise FatalError(f"database {target}: cannot prepare it on the server: {e}") from None
        child = ChildProcess(
            tool.restore_argv(target), tool.env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL
        )
        stdin = child.proc.stdin
        assert stdin is not None
        written = 0
        try:
            for blob in dump.node.content or []:
                data = memoryview(repo.load_blob(BlobType.DATA, blob))
                while data:  # an unbuffered pipe may take less than asked
                    n = stdin.write(data) or 0
                    data = data[n:]
                    written += n
            stdin.close()
        except BrokenPipeError:
            pass  # the tool stopped reading: its exit code and stderr say why
        except BaseException:
            child.kill()
            raise
        code = child.wait()
    if code != 0:
        cause = (pg_cause if dump.type == "postgresql" else mariadb_cause)(child.stderr_tail())
        program = tool.restore_argv(target)[0]
        raise FatalError(f"database {target}: {program} failed (exit code {code}): {cause}")
    return DatabaseRestore(dump.path, target, written, time.monotonic() - start)
