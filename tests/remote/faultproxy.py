"""A loopback HTTP proxy that injects faults between a client and a real server.

It forwards every request to the upstream server unless a planned ``Fault`` matches it (by method
and a substring of the path), in the order the faults were added; each fault fires ``times`` times:

- ``status``: answer with that status (500, 503, ...) without forwarding;
- ``delay``: wait ``seconds``, then forward;
- ``drop_response``: forward, then send the headers and half the body and close the connection
  (a connection dropped mid-read);
- ``drop_request``: forward the headers and half the body to the server, close both connections
  (a client or network dying mid-upload, as the server sees it).
"""

from __future__ import annotations

import socket
import threading
import time
import urllib.parse
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import urllib3

_HOP = {"connection", "keep-alive", "transfer-encoding", "host", "content-length"}


@dataclass
class Fault:
    kind: str
    method: str | None = None
    path_contains: str = ""
    status: int = 503
    seconds: float = 0.0
    times: int = 1


class FaultProxy:
    """Start with ``FaultProxy(upstream_url)``; ``url`` is where clients connect; ``close()`` ends it."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self.fired: list[tuple[str, str, str]] = []
        self.requests = 0
        self._pool = urllib3.PoolManager(maxsize=16, retries=False)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _any(self) -> None:
                proxy._handle(self)

            do_GET = do_POST = do_HEAD = do_DELETE = do_PUT = _any

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/"

    def add(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def pending(self) -> int:
        with self._lock:
            return sum(f.times for f in self._faults)

    def _take(self, method: str, path: str) -> Fault | None:
        with self._lock:
            self.requests += 1
            for f in self._faults:
                if f.times > 0 and (f.method in (None, method)) and f.path_contains in path:
                    f.times -= 1
                    self.fired.append((f.kind, method, path))
                    return f
        return None

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        fault = self._take(h.command, h.path)
        if fault is not None and fault.kind == "status":
            h.send_response(fault.status)
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        if fault is not None and fault.kind == "delay":
            time.sleep(fault.seconds)
        if fault is not None and fault.kind == "drop_request":
            self._half_upload(h, body)
            h.close_connection = True
            h.connection.shutdown(socket.SHUT_RDWR)
            return
        headers = {k: v for k, v in h.headers.items() if k.lower() not in _HOP}
        resp = self._pool.request(
            h.command,
            self.upstream + h.path,
            body=body if h.command in ("POST", "PUT") else None,
            headers=headers,
        )
        data = resp.data
        h.send_response(resp.status)
        for k, v in resp.headers.items():
            if k.lower() not in _HOP:
                h.send_header(k, v)
        size = int(resp.headers.get("Content-Length", len(data))) if h.command == "HEAD" else len(data)
        h.send_header("Content-Length", str(size))
        h.end_headers()
        if h.command == "HEAD":
            return
        if fault is not None and fault.kind == "drop_response":
            h.wfile.write(data[: len(data) // 2])
            h.wfile.flush()
            h.close_connection = True
            h.connection.shutdown(socket.SHUT_RDWR)
            return
        h.wfile.write(data)

    def _half_upload(self, h: BaseHTTPRequestHandler, body: bytes) -> None:
        parts = urllib.parse.urlsplit(self.upstream)
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80)) as s:
            lines = [
                f"{h.command} {h.path} HTTP/1.1",
                f"Host: {parts.netloc}",
                f"Content-Length: {len(body)}",
            ]
            lines += [f"{k}: {v}" for k, v in h.headers.items() if k.lower() not in _HOP]
            s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body[: len(body) // 2])
            time.sleep(0.2)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._pool.clear()
