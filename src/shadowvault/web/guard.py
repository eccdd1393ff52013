"""Who may ask the web page anything: an ASGI wrapper around the whole application.

* **Token**: when one is configured (always, for a listener that is not loopback) every request
  must carry it — ``Authorization: Bearer TOKEN``, the ``sv_token`` cookie, or ``?token=TOKEN``
  once, which sets the cookie (HttpOnly, SameSite=Strict) and redirects to the same address
  without the token, so it does not linger in the address bar or history.
* **Host**: without a token, only requests addressed to a loopback name are served. A web page
  elsewhere cannot use DNS rebinding to make a browser read the backups of this machine.
* **Read-only**: only GET and HEAD reach the application.
* Every answer carries a Content-Security-Policy without scripts, so even a name that slipped
  past escaping could not run.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl, urlencode

__all__ = ["COOKIE", "SECURITY_HEADERS", "Guard", "is_loopback"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

COOKIE = "sv_token"
SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; "
        b"frame-ancestors 'none'; base-uri 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _hostname(host_header: str) -> str:
    if host_header.startswith("["):
        return host_header[1 : host_header.find("]")]
    return host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header


class Guard:
    """Wraps an ASGI app: token, host and method checks before anything else runs."""

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":
            return  # no websockets: nothing here needs one
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if scope["method"] not in ("GET", "HEAD"):
            await _plain(send, 405, "this page is read-only", [(b"allow", b"GET, HEAD")])
            return
        if self.token is None:
            if not is_loopback(_hostname(headers.get("host", ""))):
                await _plain(send, 403, "this server answers only requests addressed to localhost")
                return
            await self._app_with_headers(scope, receive, send)
            return
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        given = dict(query).get("token")
        if given is not None and self._matches(given):
            rest = urlencode([(k, v) for k, v in query if k != "token"])
            # The raw path keeps percent-escapes (and so any byte) exactly as the client sent them.
            raw_path = scope.get("raw_path") or scope["path"].encode("utf-8", "surrogateescape")
            location = raw_path.decode("latin-1") + (f"?{rest}" if rest else "")
            cookie = f"{COOKIE}={self.token}; HttpOnly; SameSite=Strict; Path=/"
            await _plain(
                send,
                303,
                "signed in",
                [(b"location", location.encode("latin-1", "replace")), (b"set-cookie", cookie.encode())],
            )
            return
        if not self._authorised(headers):
            await _plain(send, 401, "a token is required: open the address with ?token=... once")
            return
        await self._app_with_headers(scope, receive, send)

    def _matches(self, given: str) -> bool:
        assert self.token is not None
        return hmac.compare_digest(given.encode(), self.token.encode())

    def _authorised(self, headers: dict[str, str]) -> bool:
        auth = headers.get("authorization", "")
        if auth.lower().startswith("bearer ") and self._matches(auth[7:].strip()):
            return True
        for part in headers.get("cookie", "").split(";"):
            name, _, value = part.strip().partition("=")
            if name == COOKIE and self._matches(value):
                return True
        return False

    async def _app_with_headers(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, send_secured)


async def _plain(send: Send, status: int, text: str, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    body = (text + "\n").encode()
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        *SECURITY_HEADERS,
        *(extra or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
