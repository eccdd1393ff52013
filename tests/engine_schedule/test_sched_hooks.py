"""Hooks, notification pings (to a real HTTP server on loopback) and the retention hook point."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sched_helpers import make_repo, make_source

from shadowvault.config import BackupSet
from shadowvault.engine.activity import ActivityLog
from shadowvault.engine.hooks import RunFacts, notify
from shadowvault.engine.scheduled import RunEnvironment, run_scheduled_set
from shadowvault.errors import FatalError
from shadowvault.repo import LocalBackend, Repository
from treeutil import PASSWORD


class _Recorder(BaseHTTPRequestHandler):
    pings: list[tuple[str, dict[str, Any]]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.pings.append((self.path, json.loads(body)))  # type: ignore[attr-defined]
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"OK")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[ThreadingHTTPServer]:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    srv.pings = []  # type: ignore[attr-defined]
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    t.join()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections (the kernel's backlog) and never answers."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(8)
    yield s.getsockname()[1]
    s.close()


class Env:
    def __init__(self, tmp: Path) -> None:
        self.repo = make_repo(tmp / "repo")
        self.activity = ActivityLog(tmp / "activity.db")
        self.lines: list[str] = []
        self.retention_calls: list[tuple[Repository, BackupSet]] = []
        self.env = RunEnvironment(self._open, self.activity, "testhost", self.lines.append, [str(self.repo)])

    def _open(self) -> Repository:
        return Repository.open(LocalBackend(self.repo), PASSWORD)

    def record_retention(self, repo: Repository, bset: BackupSet) -> None:
        assert repo.list_snapshots()  # open, with the new snapshot in it
        self.retention_calls.append((repo, bset))

    def run(self, bset: BackupSet) -> Any:
        return run_scheduled_set(bset, self.env, now=datetime.now(UTC))


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    e = Env(tmp_path)
    yield e
    e.activity.close()


def _env_file(path: Path) -> dict[str, str]:
    lines = path.read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line.startswith("SHADOWVAULT_"))


def test_success_pings_and_after_hook_carry_the_counts(
    tmp_path: Path, env: Env, server: ThreadingHTTPServer
) -> None:
    src = make_source(tmp_path / "src", files=7)
    out_env = tmp_path / "after.env"
    url = f"http://127.0.0.1:{server.server_port}/ping/abc"
    bset = BackupSet(name="web").with_overrides(
        sources=[str(src)],
        notify=[url],
        after_backup=f"env > {out_env}",
        on_failure=f"touch {tmp_path / 'never'}",
    )
    outcome = env.run(bset)
    assert outcome.status == "completed" and outcome.exit_code == 0
    pings = server.pings  # type: ignore[attr-defined]
    assert [p for p, _ in pings] == ["/ping/abc/start", "/ping/abc"]
    start, done = pings[0][1], pings[1][1]
    assert start["event"] == "start" and start["set_name"] == "web"
    assert done["event"] == "success" and done["ok"] == 7 and done["failed"] == 0 and done["exit_code"] == 0
    assert done["snapshot_id"] == outcome.snapshot_id
    seen = _env_file(out_env)
    assert seen["SHADOWVAULT_SET"] == "web" and seen["SHADOWVAULT_SNAPSHOT_ID"] == outcome.snapshot_id
    assert seen["SHADOWVAULT_FILES_OK"] == "7" and seen["SHADOWVAULT_EXIT_CODE"] == "0"
    assert "SHADOWVAULT_PASSWORD" not in seen  # secrets are not handed to hooks
    assert not (tmp_path / "never").exists()


def test_failure_pings_the_fail_url_and_runs_on_failure(
    tmp_path: Path, env: Env, server: ThreadingHTTPServer
) -> None:
    out_env = tmp_path / "fail.env"
    url = f"http://127.0.0.1:{server.server_port}/hc"
    bset = BackupSet(name="db").with_overrides(
        sources=[str(tmp_path / "does-not-exist")],
        notify=[url],
        notify_fail_suffix="/failed",
        notify_start_suffix="/begin",
        on_failure=f"env > {out_env}",
    )
    outcome = env.run(bset)
    assert outcome.status == "failed" and outcome.exit_code == 1
    pings = server.pings  # type: ignore[attr-defined]
    assert [p for p, _ in pings] == ["/hc/begin", "/hc/failed"]
    assert pings[1][1]["event"] == "failure" and pings[1][1]["exit_code"] == 1
    seen = _env_file(out_env)
    assert seen["SHADOWVAULT_EXIT_CODE"] == "1" and seen["SHADOWVAULT_STATUS"] == "failed"
    rec = env.activity.sessions("db")[0]
    assert rec.status == "failed" and any("does not exist" in w for w in rec.warnings)


def test_unreachable_endpoint_delays_by_at_most_the_timeout(tmp_path: Path, silent_port: int) -> None:
    lines: list[str] = []
    began = time.monotonic()
    notify(
        [f"http://127.0.0.1:{silent_port}/x", f"http://127.0.0.1:{silent_port}/y"],
        "start",
        RunFacts("web", "h"),
        timeout=1,
        log=lines.append,
    )
    elapsed = time.monotonic() - began
    assert 0.9 <= elapsed < 1.6
    assert lines and all("/x" not in line for line in lines)  # the URL path (a token) is not logged


def test_dead_endpoint_does_not_change_the_result(tmp_path: Path, env: Env, silent_port: int) -> None:
    src = make_source(tmp_path / "src")
    bset = BackupSet(name="web").with_overrides(
        sources=[str(src)], notify=[f"http://127.0.0.1:{silent_port}/p"], notify_timeout=1
    )
    began = time.monotonic()
    outcome = env.run(bset)
    assert outcome.status == "completed" and outcome.exit_code == 0
    assert any("unanswered" in line for line in env.lines)
    assert time.monotonic() - began < 30


def test_retention_hook_point_after_a_successful_run_only(tmp_path: Path, env: Env) -> None:
    src = make_source(tmp_path / "src")
    env.env.apply_retention = env.record_retention
    keep = {"keep_last": 3}
    bset = BackupSet(name="web").with_overrides(sources=[str(src)], forget_after_backup=True, retention=keep)
    assert env.run(bset).status == "completed"
    assert [b.name for _, b in env.retention_calls] == ["web"]
    assert env.retention_calls[0][1].retention.keep_last == 3
    # Not asked for: not applied.
    env.run(bset.with_overrides(forget_after_backup=False))
    assert len(env.retention_calls) == 1
    # A failed run is not followed by retention.
    env.run(bset.with_overrides(sources=[str(tmp_path / "missing")]))
    assert len(env.retention_calls) == 1

    def broken(repo: Repository, b: BackupSet) -> None:
        raise FatalError("repository is locked exclusively")

    env.env.apply_retention = broken
    outcome = env.run(bset)
    assert outcome.status == "completed" and outcome.exit_code == 0  # unchanged by the hook's error
    rec = env.activity.sessions("web")[0]
    assert any("retention failed: repository is locked exclusively" in w for w in rec.warnings)


def test_retention_not_wired_is_reported(tmp_path: Path, env: Env) -> None:
    src = make_source(tmp_path / "src")
    bset = BackupSet(name="web").with_overrides(
        sources=[str(src)], forget_after_backup=True, retention={"keep_last": 1}
    )
    assert env.run(bset).status == "completed"
    assert any("no retention to apply" in line for line in env.lines)
