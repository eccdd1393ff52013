"""Per-set hook commands and notification pings around a scheduled run.

* **Hooks** (``before_backup``, ``after_backup``, ``on_failure``) run through ``/bin/sh -c`` with
  the run's facts in the environment (:func:`hook_environment`). The repository password
  variables are removed from what a hook inherits: a hook is someone else's program.
* **Notifications** (``notify = [URL, …]``) are healthchecks.io / ntfy style pings: ``URL +
  start_suffix`` when the run starts, ``URL`` on success, ``URL + fail_suffix`` on failure, each a
  POST of a small JSON body. A ping runs in its own thread that is waited for at most
  ``timeout`` seconds, so a dead endpoint delays a run by at most that and never changes its
  result; problems are reported through ``log``.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Literal

__all__ = ["HookResult", "RunFacts", "hook_environment", "notify", "run_hook"]

# Never handed to hooks: they would see the repository's password.
_SECRET_VARIABLES = ("SHADOWVAULT_PASSWORD", "RESTIC_PASSWORD", "SHADOWVAULT_PASSWORD_FILE")
_OUTPUT_TAIL = 400

Event = Literal["start", "success", "failure"]


@dataclass(frozen=True)
class RunFacts:
    """What hooks and notifications are told about a run."""

    set_name: str
    host: str
    session_id: int | None = None
    snapshot_id: str | None = None
    ok: int = 0
    suspect: int = 0
    failed: int = 0
    exit_code: int | None = None
    status: str = "running"


@dataclass(frozen=True)
class HookResult:
    """A hook's exit code (None: it could not be started) and the end of its output."""

    name: str
    exit_code: int | None
    output: str

    @property
    def ok(self) -> bool:
        """True when the command exited 0."""
        return self.exit_code == 0

    def describe(self) -> str:
        """One line for the log: which hook, how it ended, the last of its output."""
        how = "could not be started" if self.exit_code is None else f"exited {self.exit_code}"
        tail = f": {self.output.strip()}" if self.output.strip() else ""
        return f"{self.name} hook {how}{tail}"


def hook_environment(facts: RunFacts, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a hook: the daemon's minus secrets, plus ``SHADOWVAULT_*`` facts."""
    env = {k: v for k, v in (os.environ if base is None else base).items() if k not in _SECRET_VARIABLES}
    env.update(
        {
            "SHADOWVAULT_SET": facts.set_name,
            "SHADOWVAULT_HOST": facts.host,
            "SHADOWVAULT_SESSION_ID": "" if facts.session_id is None else str(facts.session_id),
            "SHADOWVAULT_SNAPSHOT_ID": facts.snapshot_id or "",
            "SHADOWVAULT_FILES_OK": str(facts.ok),
            "SHADOWVAULT_FILES_SUSPECT": str(facts.suspect),
            "SHADOWVAULT_FILES_FAILED": str(facts.failed),
            "SHADOWVAULT_EXIT_CODE": "" if facts.exit_code is None else str(facts.exit_code),
            "SHADOWVAULT_STATUS": facts.status,
        }
    )
    return env


def run_hook(name: str, command: str, facts: RunFacts) -> HookResult:
    """Run one hook command to its end; its output is kept (the tail) for the log."""
    try:
        p = subprocess.run(
            ["/bin/sh", "-c", command],
            env=hook_environment(facts),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            check=False,
        )
    except OSError as e:
        return HookResult(name, None, str(e))
    output = p.stdout.decode("utf-8", "replace")[-_OUTPUT_TAIL:]
    return HookResult(name, p.returncode, output)


def _url_for(url: str, event: Event, start_suffix: str, fail_suffix: str) -> str:
    if event == "start":
        return url.rstrip("/") + start_suffix
    if event == "failure":
        return url.rstrip("/") + fail_suffix
    return url


def _post(url: str, body: bytes, timeout: float, log: Callable[[str], None]) -> None:
    req = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "shadowvault"},
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            resp.read(1024)
    except (urllib.error.URLError, OSError, ValueError) as e:
        log(f"notification to {_redacted(url)} failed: {getattr(e, 'reason', e)}")


def _redacted(url: str) -> str:
    """The URL without credentials or query (ping URLs often embed a secret token in the path)."""
    parsed = urllib.parse.urlsplit(url)
    host = parsed.hostname or ""
    if parsed.port:
        host += f":{parsed.port}"
    return f"{parsed.scheme}://{host}/…"


def notify(
    urls: list[str],
    event: Event,
    facts: RunFacts,
    *,
    timeout: float,
    start_suffix: str = "/start",
    fail_suffix: str = "/fail",
    log: Callable[[str], None],
) -> None:
    """Ping every URL for ``event``; returns after all answered or ``timeout`` seconds at most."""
    if not urls:
        return
    body = json.dumps({"event": event, **asdict(facts)}).encode()
    threads = [
        threading.Thread(
            target=_post,
            args=(_url_for(u, event, start_suffix, fail_suffix), body, timeout, log),
            name="notify",
            daemon=True,
        )
        for u in urls
    ]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    if any(t.is_alive() for t in threads):
        log(f"notification ({event}) still unanswered after {timeout:g} s; continuing without it")
