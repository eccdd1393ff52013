"""The Starlette application: server-rendered pages over the engine's read API.

Pages: ``/`` overview (the facts of ``status`` and a run chart per set), ``/sessions/ID`` (every
suspect and failed file of a session), ``/snapshots`` and ``/snapshots/ID/browse?path=P`` (the
snapshot browser), ``/snapshots/ID/file?path=P`` and ``/snapshots/ID/tar?path=P`` (downloads),
``/status.json``. Everything is read through :mod:`shadowvault.engine.status` and
:class:`shadowvault.engine.browse.SnapshotReader`, the same calls the CLI makes.

Paths travel in the query string, percent-encoded from their exact bytes, and are decoded here
from the raw query with ``surrogateescape`` — so a name with a non-UTF-8 byte round-trips, where
the framework's own decoding would replace the byte. Templates autoescape; the ``shown`` filter
turns undecodable bytes into ``\\xNN`` text first.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from shadowvault.config import Config
from shadowvault.engine.activity import ActivityLog
from shadowvault.engine.browse import SnapshotReader, normalise
from shadowvault.engine.checks import last_check
from shadowvault.engine.status import (
    RepositoryStatus,
    Status,
    problem_files,
    read_status,
    repository_status,
    run_history,
    session_run,
)
from shadowvault.engine.status_json import status_json
from shadowvault.errors import ShadowvaultError

from .chart import chart
from .guard import Guard

__all__ = ["WebSource", "create_app"]

# Counting unreferenced data walks every tree: done at most this often for the overview.
_REPO_STATUS_SECONDS = 60.0
CHART_RUNS = 30


@dataclass
class WebSource:
    """Where the pages read from: configuration, activity log, check records, one repository."""

    config: Config | None
    activity_path: Path
    checks_dir: Path
    reader: SnapshotReader

    def __post_init__(self) -> None:
        self._repo_status: tuple[float, RepositoryStatus] | None = None
        self._repo_lock = threading.Lock()

    def status(self) -> Status:
        """The status as ``status`` takes it (the repository part cached briefly)."""
        with self._repo_lock:
            cached = self._repo_status
            if cached is None or time.monotonic() - cached[0] > _REPO_STATUS_SECONDS:
                self.reader.snapshots()  # refreshes the index (a prune may have rewritten it)
                with self.reader.lock:
                    fresh = repository_status(self.reader.repo, self.checks_dir)
                cached = (time.monotonic(), fresh)
                self._repo_status = cached
        status = read_status(self.config, self.activity_path, None, None)
        # The check record is one small file: always the current one, not the cached one.
        repo = replace(cached[1], last_check=last_check(self.checks_dir, cached[1].repo_id))
        return replace(status, repositories=(repo,))

    def log(self) -> ActivityLog | None:
        """The activity log, or None before the first run (never created by reading)."""
        return ActivityLog(self.activity_path) if self.activity_path.exists() else None


def shown(text: str | None) -> str:
    """Display text of a path: undecodable bytes (surrogate escapes) as ``\\xNN``."""
    if text is None:
        return ""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def urlpath(text: str) -> str:
    """A path for a query string, percent-encoded from its exact bytes."""
    return quote(text.encode("utf-8", "surrogateescape"), safe="/")


def human_bytes(n: float | None) -> str:
    """1536 → "1.5 KiB"."""
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def local_time(when: datetime | None) -> str:
    """A time as this machine's local wall clock."""
    return when.astimezone().strftime("%Y-%m-%d %H:%M:%S") if when else "-"


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("shadowvault.web", "templates"),
        autoescape=select_autoescape(["html", "svg"], default=True),
    )
    env.filters.update(shown=shown, urlpath=urlpath, human_bytes=human_bytes, local_time=local_time)
    return env


def _query_path(request: Request) -> str:
    """The ``path`` parameter with its exact bytes (see the module docstring)."""
    raw = request.scope.get("query_string", b"").decode("latin-1")
    for key, value in parse_qsl(raw, encoding="utf-8", errors="surrogateescape"):
        if key == "path":
            return normalise(value)
    return "/"


def _disposition(name: str) -> str:
    """Content-Disposition for a download: an ASCII fallback and the exact name (RFC 6266)."""
    fallback = "".join(c if c.isascii() and c.isprintable() and c not in '"\\;' else "_" for c in shown(name))
    return f"attachment; filename=\"{fallback or 'download'}\"; filename*=UTF-8''{urlpath(name)}"


def create_app(source: WebSource, *, token: str | None) -> Guard:
    """The application wrapped in its :class:`Guard` (token, host and method checks)."""
    env = _environment()

    def page(name: str, status_code: int = 200, **values: Any) -> Response:
        text = env.get_template(name).render(**values)
        # Every path goes through `shown`; should one not, a stray surrogate still cannot break
        # the response: it is written as \udcNN text.
        return HTMLResponse(text.encode("utf-8", "backslashreplace"), status_code=status_code)

    def problem(status_code: int, message: str) -> Response:
        return page("error.html", status_code, message=message)

    def overview(request: Request) -> Response:
        status = source.status()
        log = source.log()
        charts = {}
        try:
            for s in status.sets:
                charts[s.name] = chart(run_history(log, s.name, CHART_RUNS)) if log else None
        finally:
            if log:
                log.close()
        return page("overview.html", status=status, charts=charts)

    def status_document(request: Request) -> Response:
        return JSONResponse(status_json(source.status()))

    def session(request: Request) -> Response:
        sid = int(request.path_params["sid"])
        log = source.log()
        if log is None:
            return problem(404, "no session has run on this machine yet")
        with log:
            run = session_run(log, sid)
            files = problem_files(log, sid) if run else []
        if run is None:
            return problem(404, f"there is no session {sid} in the activity log")
        return page("session.html", run=run, files=files)

    def snapshots(request: Request) -> Response:
        return page("snapshots.html", snapshots=source.reader.snapshots())

    def browse(request: Request) -> Response:
        path = _query_path(request)
        try:
            info, snap = source.reader.snapshot(request.path_params["snap"])
            entries = source.reader.listdir(snap, path)
        except ShadowvaultError as e:
            return problem(404, str(e))
        prefix = "" if path == "/" else path
        failed = [f for f in source.reader.failed_files(snap) if os.path.dirname(f.path) == (prefix or "/")]
        parts = [p for p in path.split("/") if p]
        crumbs = [("/" + "/".join(parts[: i + 1]), part) for i, part in enumerate(parts)]
        return page("browse.html", info=info, path=path, entries=entries, failed=failed, crumbs=crumbs)

    def download_file(request: Request) -> Response:
        path = _query_path(request)
        try:
            _, snap = source.reader.snapshot(request.path_params["snap"])
            entry, chunks = source.reader.read_file(snap, path)
        except ShadowvaultError as e:
            return problem(404, str(e))
        headers = {"content-disposition": _disposition(entry.name), "content-length": str(entry.size)}
        return StreamingResponse(chunks, media_type="application/octet-stream", headers=headers)

    def download_tar(request: Request) -> Response:
        path = _query_path(request)
        try:
            info, snap = source.reader.snapshot(request.path_params["snap"])
            source.reader.listdir(snap, path)  # a missing path or a file is an error page, not a broken tar
        except ShadowvaultError as e:
            return problem(404, str(e))
        name = (os.path.basename(path) or f"snapshot-{info.id[:8]}") + ".tar"
        headers = {"content-disposition": _disposition(name)}
        return StreamingResponse(
            source.reader.tar(snap, path), media_type="application/x-tar", headers=headers
        )

    routes = [
        Route("/", overview),
        Route("/status.json", status_document),
        Route("/sessions/{sid:int}", session),
        Route("/snapshots", snapshots),
        Route("/snapshots/{snap}/browse", browse),
        Route("/snapshots/{snap}/file", download_file),
        Route("/snapshots/{snap}/tar", download_tar),
    ]
    return Guard(Starlette(routes=routes), token)
