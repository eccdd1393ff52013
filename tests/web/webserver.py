"""Start `shadowvault web` as a real server process for the web tests, and talk to it."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from conftest import require
from statusfixtures import Scenario
from treeutil import env


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def own_address() -> str:
    """An IPv4 address of this machine that is not loopback (traffic to it stays on the machine)."""
    out = subprocess.run(
        ["ip", "-4", "-o", "addr", "show", "scope", "global"], capture_output=True, text=True
    )
    addresses = [line.split()[3].split("/")[0] for line in out.stdout.splitlines() if len(line.split()) > 3]
    require(bool(addresses), "needs a non-loopback IPv4 address on this machine")
    return addresses[0]


@dataclass
class WebServer:
    proc: subprocess.Popen[str]
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stderr is not None:
            self.proc.stderr.close()


def start_web(s: Scenario, host: str = "127.0.0.1", *extra: str) -> WebServer:
    port = free_port(host)
    proc = subprocess.Popen(
        [sys.executable, "-m", "shadowvault", "web", "--listen", f"{host}:{port}", *extra],
        env=env(s.repo, **s.env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"web exited {proc.returncode}: {proc.stderr.read() if proc.stderr else ''}")
        try:
            with socket.create_connection((host, port), timeout=1):
                return WebServer(proc, host, port)
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError("web did not start listening within 60 s")


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def get(url: str, headers: dict[str, str] | None = None, method: str = "GET") -> Answer:
    """One request; any status is an answer (no exceptions, no redirects followed)."""
    opener = urllib.request.build_opener(_NoRedirect)
    request = urllib.request.Request(url, headers=headers or {}, method=method)
    try:
        with opener.open(request, timeout=60) as r:
            return Answer(r.status, {k.lower(): v for k, v in r.headers.items()}, r.read())
    except urllib.error.HTTPError as e:
        with e:
            return Answer(e.code, {k.lower(): v for k, v in e.headers.items()}, e.read())


def artifacts_dir(tmp_path_factory_dir: Path) -> Path:
    """Where screenshots go: $SHADOWVAULT_TEST_ARTIFACTS, else a temporary directory."""
    import os

    given = os.environ.get("SHADOWVAULT_TEST_ARTIFACTS")
    target = Path(given) if given else tmp_path_factory_dir
    target.mkdir(parents=True, exist_ok=True)
    return target
