"""restic's REST protocol, version 2 (rest-server, ``rclone serve restic``).

``POST {path}/?create=true`` makes the layout; ``HEAD/GET/POST/DELETE {path}/{type}/{name}`` (the
config is ``{path}/config``); ``GET {path}/{type}/`` with ``Accept: application/vnd.x.restic.rest.v2``
lists ``[{"name", "size"}]``. Reads of a range send ``Range: bytes=a-b`` and must get exactly that
many bytes back. The server writes an upload to a temporary name and renames it (both rest-server
and rclone do), so a dropped upload leaves no partial file.

urllib3 keeps the connections alive (one pool, ``connections`` + 2 sockets) and verifies TLS
against the system's CAs or the given ``cacert``. Basic-auth credentials come from the URL or the
environment and are sent as a header only; they are never part of a message.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import urllib3
from urllib3.exceptions import HTTPError

from shadowvault.repo.backends.base import TYPE_DIRS, Backend, FileType, RemoteError, list_config
from shadowvault.repo.backends.options import BackendOptions
from shadowvault.repo.location import RestLocation

_V2 = "application/vnd.x.restic.rest.v2"
_TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


class RestBackend:
    """A repository behind a REST server."""

    def __init__(self, loc: RestLocation, opts: BackendOptions) -> None:
        self._loc = loc
        self._base = loc.url
        self.connections = opts.connections
        self.remote = True
        username = loc.username if loc.username is not None else opts.rest_username
        password = loc.password if loc.password is not None else opts.rest_password
        self._headers: dict[str, str] = {}
        if username is not None:
            self._headers.update(urllib3.make_headers(basic_auth=f"{username}:{password or ''}"))
        self._pool = urllib3.PoolManager(
            num_pools=2,
            maxsize=opts.connections + 2,
            block=False,
            retries=False,
            timeout=urllib3.Timeout(connect=15.0, read=120.0),
            ca_certs=opts.cacert,
            cert_reqs="CERT_REQUIRED",
        )

    def location(self) -> str:
        """``rest:URL`` without the password."""
        return self._loc.display()

    def _url(self, ft: FileType, name: str) -> str:
        if ft is FileType.CONFIG:
            return self._base + "config"
        if "/" in name or name.startswith(".") or not name:
            raise ValueError(f"invalid repository file name {name!r}")
        return f"{self._base}{TYPE_DIRS[ft]}/{name}"

    def _request(
        self,
        method: str,
        url: str,
        *,
        body: bytes | bytearray | memoryview | None = None,
        headers: dict[str, str] | None = None,
        what: str,
    ) -> urllib3.BaseHTTPResponse:
        h = dict(self._headers)
        if headers:
            h.update(headers)
        try:
            if body is not None:
                h["Content-Type"] = "application/octet-stream"
                resp = self._pool.request(method, url, body=bytes(body), headers=h)
            else:
                resp = self._pool.request(method, url, headers=h)
        except HTTPError as exc:
            # Connection refused/reset, timeouts, a body cut short: all worth another try.
            raise RemoteError(f"{what}: {type(exc).__name__}: {_reason(exc)}") from None
        return resp

    def _fail(self, resp: urllib3.BaseHTTPResponse, what: str) -> Exception:
        status = resp.status
        if status == 404:
            return FileNotFoundError(f"{what}: not found on the server")
        if status in (401, 403):
            return PermissionError(f"{what}: the server answered {status} (check the user name and password)")
        if status == 416:
            return EOFError(f"{what}: range beyond the end of the file")
        return RemoteError(
            f"{what}: the server answered {status} {resp.reason or ''}".rstrip(),
            permanent=status not in _TRANSIENT_STATUS,
        )

    def create(self) -> None:
        """Ask the server to make the repository layout (keeps an existing one)."""
        resp = self._request("POST", self._base + "?create=true", body=b"", what="create")
        if resp.status != 200:
            raise self._fail(resp, f"create the repository at {self.location()}")

    def save(self, ft: FileType, name: str, data: bytes | bytearray | memoryview) -> None:
        """Upload unless the file exists (checked first: the servers may replace silently)."""
        url = self._url(ft, name)
        what = f"save {ft.value} {name}"
        head = self._request("HEAD", url, what=what)
        if head.status == 200:
            raise FileExistsError(f"{ft.value} {name} already exists")
        if head.status != 404:
            raise self._fail(head, what)
        resp = self._request("POST", url, body=data, what=what)
        if resp.status != 200:
            raise self._fail(resp, what)

    def load(self, ft: FileType, name: str, offset: int = 0, length: int | None = None) -> bytes:
        """The file or ``length`` bytes from ``offset`` (a short answer is ``EOFError``)."""
        if offset < 0 or (length is not None and length < 0):
            raise ValueError("negative offset or length")
        url = self._url(ft, name)
        what = f"load {ft.value} {name}"
        headers: dict[str, str] = {}
        if length == 0:
            return b""
        if length is not None:
            headers["Range"] = f"bytes={offset}-{offset + length - 1}"
        elif offset:
            headers["Range"] = f"bytes={offset}-"
        resp = self._request("GET", url, headers=headers, what=what)
        if resp.status not in (200, 206):
            raise self._fail(resp, what)
        data = resp.data
        if resp.status == 200 and headers:
            # A server that ignores Range sends the whole file: cut the range out ourselves.
            end = len(data) if length is None else offset + length
            if end > len(data) or offset > len(data):
                raise EOFError(f"{what}: wanted {length} bytes at {offset}, file has {len(data)}")
            data = data[offset:end]
        if length is not None and len(data) != length:
            raise EOFError(f"{what}: wanted {length} bytes at {offset}, got {len(data)}")
        return data

    def stat(self, ft: FileType, name: str) -> int:
        """Size from ``HEAD``'s Content-Length."""
        what = f"stat {ft.value} {name}"
        resp = self._request("HEAD", self._url(ft, name), what=what)
        if resp.status != 200:
            raise self._fail(resp, what)
        try:
            return int(resp.headers["Content-Length"])
        except (KeyError, ValueError):
            raise RemoteError(f"{what}: the server sent no size", permanent=True) from None

    def list(self, ft: FileType) -> Iterator[tuple[str, int]]:
        """One v2 listing request (a v1 server answers names only: then one HEAD per file)."""
        if ft is FileType.CONFIG:
            yield from list_config(self)
            return
        url = f"{self._base}{TYPE_DIRS[ft]}/"
        what = f"list {ft.value}"
        resp = self._request("GET", url, headers={"Accept": _V2}, what=what)
        if resp.status == 404:
            return
        if resp.status != 200:
            raise self._fail(resp, what)
        try:
            doc = json.loads(resp.data)
        except ValueError:
            raise RemoteError(f"{what}: the server's answer is not JSON", permanent=True) from None
        if resp.headers.get("Content-Type", "").startswith(_V2):
            items = [(str(e["name"]), int(e["size"])) for e in doc]
        else:
            items = [(str(n), self.stat(ft, str(n))) for n in doc]
        yield from items

    def remove(self, ft: FileType, name: str) -> None:
        """``DELETE`` (a missing file is ``FileNotFoundError``, as on every backend)."""
        url = self._url(ft, name)
        what = f"remove {ft.value} {name}"
        head = self._request("HEAD", url, what=what)
        if head.status != 200:
            raise self._fail(head, what)
        resp = self._request("DELETE", url, what=what)
        if resp.status != 200:
            raise self._fail(resp, what)

    def is_permanent_error(self, exc: BaseException) -> bool:
        """Client errors and missing/existing files are permanent; 5xx and network failures are not."""
        if isinstance(exc, RemoteError):
            return exc.permanent
        return isinstance(exc, (FileNotFoundError, FileExistsError, PermissionError, ValueError, EOFError))

    def close(self) -> None:
        """Close the kept-alive connections."""
        self._pool.clear()


def _reason(exc: HTTPError) -> str:
    # urllib3 nests the cause (MaxRetryError → NewConnectionError → OSError); name the innermost.
    inner: BaseException = exc
    while getattr(inner, "reason", None) is not None and isinstance(inner.reason, BaseException):  # type: ignore[attr-defined]
        inner = inner.reason  # type: ignore[attr-defined]
    return str(inner).split(": ", 1)[-1] if inner is not exc else str(exc)


_: type[Backend] = RestBackend
