"""Dumps of a set's database servers, inside its backup session and into its snapshot.

For every configured server: ask it for its version and live data directory (so file-system
sources that cover the directory leave it out: the dump is its consistent copy), list its
databases when the set says ``"all"``, then stream each dump into the repository and place it as
a regular file under ``/.shadowvault/<type>/<host>-<port>/``. Each dump ends ``ok``, ``suspect``
(its verification failed: ``pg_restore --list`` could not read the stored archive, or the SQL
dump lacks its completion trailer) or ``failed`` (the tool exited non-zero, the server could
not be reached or its pg_dump is older than the server: one line naming set, database and cause;
a failed dump's blobs are not referenced). Problems of one server or database never stop the
others.
"""

from __future__ import annotations

import grp
import os
import pwd
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from shadowvault.config.databases import DatabaseServer
from shadowvault.errors import ConfigError
from shadowvault.fs import FileMeta
from shadowvault.openfiles import Classification

from ..outcomes import DumpInfo, Outcome
from ..tree_builder import PendingDir, PendingFile, TreeBuilder
from .credentials import PrivateDir
from .mariadb import MariadbTool
from .mariadb import cause as mariadb_cause
from .postgresql import PostgresTool, ServerUnavailable, lock_wait_limit
from .postgresql import cause as pg_cause
from .stream import DumpJob, StreamResult, bound_malloc_arenas, file_name_of, stream_dump

__all__ = [
    "VIRTUAL_ROOT",
    "DatabaseDumps",
    "DumpResult",
    "make_tool",
    "probe_data_directories",
    "virtual_dir",
]

VIRTUAL_ROOT = "/.shadowvault"
Tool = PostgresTool | MariadbTool


def make_tool(server: DatabaseServer, private: PrivateDir) -> Tool:
    """The client tools for ``server``'s type."""
    return PostgresTool(server, private) if server.type == "postgresql" else MariadbTool(server, private)


def virtual_dir(server: DatabaseServer) -> str:
    """Where ``server``'s dumps live in the snapshot, e.g. ``/.shadowvault/postgresql/db1-5432``.

    Host and port are the ones the tools will use: the set's, else the tools' environment
    variables (``PGHOST``/``PGPORT``, ``MYSQL_HOST``/``MYSQL_TCP_PORT``), else their defaults; a
    socket directory or path counts as ``localhost``.
    """
    pg = server.type == "postgresql"
    host = server.host or os.environ.get("PGHOST" if pg else "MYSQL_HOST") or "localhost"
    if host.startswith("/"):
        host = "localhost"
    port = server.port or os.environ.get("PGPORT" if pg else "MYSQL_TCP_PORT") or (5432 if pg else 3306)
    return f"{VIRTUAL_ROOT}/{server.type}/{host}-{port}"


@dataclass(frozen=True)
class DumpResult:
    """One dump's final state (or one database that could not be dumped)."""

    path: str
    server: DatabaseServer
    database: str  # "" for PostgreSQL's globals
    classification: str  # ok | suspect | failed
    message: str
    size: int
    duration: float
    server_version: str

    def outcome(self) -> Outcome:
        """The outcome, as stored in the snapshot and the activity log (no credentials)."""
        reason = {"ok": "database-dump", "suspect": "dump-unverified", "failed": "dump-failed"}
        dump = DumpInfo(
            type=self.server.type,
            server=virtual_dir(self.server).rsplit("/", 1)[1],
            database=self.database or "(globals)",
            size=self.size,
            duration=self.duration,
            server_version=self.server_version,
            set=self.server.set_name,
        )
        cls = Classification(self.classification)
        return Outcome(cls, reason[self.classification], self.message or None, 1, (), dump)


def _meta(name: str, kind: str, size: int, when_ns: int) -> FileMeta:
    """Metadata of a virtual entry: owned by the backing-up user, private (dumps hold all data)."""
    uid, gid = os.getuid(), os.getgid()
    try:
        user = pwd.getpwuid(uid).pw_name
    except KeyError:
        user = ""
    try:
        group = grp.getgrgid(gid).gr_name
    except KeyError:
        group = ""
    mode = 0o040700 if kind == "dir" else 0o100600
    return FileMeta(
        name=name.encode(),
        kind="dir" if kind == "dir" else "file",
        mode=mode,
        uid=uid,
        gid=gid,
        user=user,
        group=group,
        inode=0,
        device=0,
        rdev=0,
        size=size,
        nlink=1,
        atime_ns=when_ns,
        mtime_ns=when_ns,
        ctime_ns=when_ns,
    )


@dataclass
class _Probe:
    """What asking one server gave: its tools and facts, or why it could not be asked."""

    server: DatabaseServer
    tool: Tool | None  # None: unreachable (``error`` says why)
    version: str = ""
    data_dir: str | None = None
    error: str = ""  # with a tool: reachable, but its client tools cannot dump it


class DatabaseDumps:
    """Every server of one set: probe, exclusions, dumps into the session's tree."""

    def __init__(
        self,
        servers: list[DatabaseServer],
        *,
        chunker: Any,
        submit: Callable[[bytes], Future[bytes]],
        warn: Callable[[str], None],
        progress: Callable[[], None] | None = None,
    ) -> None:
        self.servers = servers
        self.chunker = chunker
        self.submit = submit
        self.warn = warn
        self.progress = progress
        self.private = PrivateDir()
        if servers:
            bound_malloc_arenas()  # before the blob workers first allocate
        self._probed: list[_Probe] = []

    def __enter__(self) -> DatabaseDumps:
        return self

    def __exit__(self, *exc: object) -> None:
        self.private.close()

    def probe(self) -> None:
        """Ask every server for its version and data directory (errors are kept per server)."""
        for server in self.servers:
            try:
                tool = make_tool(server, self.private)
                version, data_dir = tool.probe()
            except (ServerUnavailable, ConfigError) as e:
                self._probed.append(_Probe(server, None, error=str(e)))
                continue
            # A client too old for the server fails every database of it, but the server did
            # answer: "all" is still listed and its data directory still known.
            self._probed.append(_Probe(server, tool, version, data_dir, tool.client_problem(version)))

    def data_directories(self) -> list[tuple[DatabaseServer, str]]:
        """The live data directories of the servers that answered."""
        return [(p.server, p.data_dir) for p in self._probed if p.tool is not None and p.data_dir]

    def exclusions(self, sources: list[str], run_servers: list[DatabaseServer]) -> list[str]:
        """Live data directories (of these servers and of ``run_servers``, dumped by other sets of
        the run) that lie inside ``sources``: each is excluded with one log line."""
        if not self._probed:
            self.probe()
        live = self.data_directories() + probe_data_directories(run_servers)
        result: list[str] = []
        for server, data_dir in live:
            path = os.path.normpath(data_dir)
            if path not in result and any(path == s or path.startswith(s.rstrip("/") + "/") for s in sources):
                result.append(path)
                self.warn(
                    f"{path}: live {server.type} data directory excluded (its dump is the consistent copy)"
                )
        return result

    def dump_into(self, root: PendingDir, builder: TreeBuilder) -> Iterator[DumpResult]:
        """Dump every server into ``/.shadowvault/…`` under ``root``; yields each dump's result."""
        if not self._probed:
            self.probe()
        now = time.time_ns()
        top = _subdir(root, VIRTUAL_ROOT.strip("/"), now)
        by_type: dict[str, PendingDir] = {}
        by_host: dict[str, PendingDir] = {}  # one directory per host-port, even if listed twice
        for probe in self._probed:
            server = probe.server
            if server.type not in by_type:
                by_type[server.type] = _subdir(top, server.type, now)
            where = virtual_dir(server)
            if where not in by_host:
                by_host[where] = _subdir(by_type[server.type], where.rsplit("/", 1)[1], now)
            yield from self._server(server, probe.tool, probe.version, probe.error, by_host[where])
        for d in [*by_host.values(), *by_type.values(), top]:
            _close(d, builder)

    def _server(
        self, server: DatabaseServer, tool: Tool | None, version: str, error: str, host_dir: PendingDir
    ) -> Iterator[DumpResult]:
        base = virtual_dir(server)
        ext = ".dump" if server.type == "postgresql" else ".sql"
        names = list(dict.fromkeys(server.databases))  # a name listed twice is dumped once
        if tool is not None and server.all_databases:
            try:
                names = tool.list_databases()
            except ServerUnavailable as e:
                tool, error = None, str(e)
        if tool is None or error:
            for db in names or ["all"]:
                path = f"{base}/{file_name_of(db, ext)}" if names else f"{base}/*"
                message = f"set {server.set_name}, database {db}: {error}"
                yield DumpResult(path, server, db, "failed", message, 0, 0.0, version)
            return
        for job in tool.jobs(names):
            result, chunks = self._dump(server, tool, job, version, f"{base}/{job.file_name}")
            yield result
            if result.classification != "failed":  # a failed dump's blobs stay unreferenced
                stored = result.outcome() if result.classification == "suspect" else None
                meta = _meta(job.file_name, "file", result.size, time.time_ns())
                host_dir.add(PendingFile(meta, result.size, chunks, stored))

    def _dump(
        self, server: DatabaseServer, tool: Tool, job: DumpJob, version: str, path: str
    ) -> tuple[DumpResult, list[Future[bytes]]]:
        prefix = f"set {server.set_name}, database {job.database or '(globals)'}"
        progress = self.progress
        on_progress = (lambda _n: progress()) if progress is not None else None
        try:
            res = stream_dump(job, tool.env, self.chunker, self.submit, on_progress)
        except FileNotFoundError as e:
            message = f"{prefix}: {e.filename}: command not found (install the database client tools)"
            return DumpResult(path, server, job.database, "failed", message, 0, 0.0, version), []
        cls, message = _classify(server, job, res)
        text = f"{prefix}: {message}" if message else ""
        return DumpResult(path, server, job.database, cls, text, res.size, res.duration, version), res.chunks


def _classify(server: DatabaseServer, job: DumpJob, res: StreamResult) -> tuple[str, str]:
    """failed: the tool failed; suspect: the stored stream does not verify; else ok."""

    def cause(lines: list[str]) -> str:
        if server.type == "postgresql":
            return pg_cause(lines, lock_wait_limit(server))
        return mariadb_cause(lines)

    if res.returncode != 0:
        how = f"exit code {res.returncode}" if res.returncode > 0 else f"killed by signal {-res.returncode}"
        return "failed", f"{os.path.basename(job.argv[0])} failed ({how}): {cause(res.stderr)}"
    if job.verify_argv is not None and res.verify_returncode != 0:
        return (
            "suspect",
            f"{' '.join(job.verify_argv)} cannot read the stored dump: {cause(res.verify_stderr)}",
        )
    if job.trailer is not None and job.trailer not in res.tail:
        return "suspect", f"the dump does not end with {job.trailer.decode()!r}: it may be incomplete"
    return "ok", ""


def _subdir(parent: PendingDir, name: str, now: int) -> PendingDir:
    return PendingDir(
        meta=_meta(name, "dir", 0, now), parent=parent, slot=parent.reserve(), parent_nodes=None
    )


def _close(d: PendingDir, builder: TreeBuilder) -> None:
    d.listed = True
    builder.try_seal(d)


def probe_data_directories(servers: list[DatabaseServer]) -> list[tuple[DatabaseServer, str]]:
    """Live data directories of servers another set of the run dumps (unreachable ones: none)."""
    result: list[tuple[DatabaseServer, str]] = []
    with PrivateDir() as private:
        for server in servers:
            try:
                _, data_dir = make_tool(server, private).probe()
            except (ServerUnavailable, ConfigError):
                continue
            if data_dir:
                result.append((server, data_dir))
    return result
