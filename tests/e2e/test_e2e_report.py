"""Issues 4 and 5: `activity` and `report` after real sessions with suspect and failed files.

Two sets run with `backup --all-sets`:

* ``live`` (try-deny-write): ``held.log`` is held open for writing by a `sleep` process → suspect,
  naming that process; a file whose absolute path is longer than PATH_MAX cannot even be
  stat'ed → failed (io-error). So one session has one suspect and one failed file.
* ``strict`` (deny-write, retry_times 0, detailed log): ``locked.db`` held by another `sleep`
  → failed after one attempt, naming the writer; ``fine.txt`` → ok, logged because of
  detailed_log.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from treeutil import sv


def _xdg(tmp: Path) -> dict[str, str]:
    return {
        "XDG_STATE_HOME": str(tmp / "xdg-state"),
        "XDG_DATA_HOME": str(tmp / "xdg-data"),
        "XDG_CONFIG_HOME": str(tmp / "xdg-config"),
    }


def _hold(path: Path) -> subprocess.Popen[bytes]:
    """A real `sleep` process with ``path`` open for writing (fd 3), once it really has it."""
    proc = subprocess.Popen(["sh", "-c", f"exec 3>>'{path}' sleep 300"])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            fds = os.listdir(f"/proc/{proc.pid}/fd")
            opened = {os.readlink(f"/proc/{proc.pid}/fd/{fd}") for fd in fds}
            if str(path) in opened and Path(f"/proc/{proc.pid}/comm").read_text().strip() == "sleep":
                return proc
        except OSError:
            pass
        time.sleep(0.01)
    proc.kill()
    raise AssertionError(f"writer never opened {path}")


def _too_deep(base: Path) -> Path:
    """A file whose absolute path exceeds PATH_MAX (4096) while its directory's does not.

    Built with directory fds, since no single path call could reach it.
    """
    fd = os.open(base, os.O_RDONLY)
    path = str(base)
    try:
        while len(path) < 3900:
            name = "d" * 200
            os.mkdir(name, dir_fd=fd)
            nfd = os.open(name, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = nfd
            path += "/" + name
        name = "f" * 250
        wfd = os.open(name, os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
        os.write(wfd, b"too deep\n")
        os.close(wfd)
    finally:
        os.close(fd)
    return Path(path + "/" + name)


@dataclass
class Ran:
    cfg: Path
    env: dict[str, str]
    held: Path
    deep: Path
    locked: Path
    fine: Path
    live_writer: int
    strict_writer: int
    exit_code: int
    messages: list[dict[str, Any]]

    def sv(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return sv(*args, "--config", str(self.cfg), env_extra=self.env, check=check)

    def json(self, *args: str) -> Any:
        return json.loads(self.sv(*args, "--json").stdout)


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ran]:
    tmp = tmp_path_factory.mktemp("report")
    live, strict = tmp / "live", tmp / "strict"
    live.mkdir()
    strict.mkdir()
    held, locked, fine = live / "held.log", strict / "locked.db", strict / "fine.txt"
    held.write_text("log line\n")
    locked.write_text("database page\n")
    fine.write_text("nobody writes here\n")
    (live / "quiet.txt").write_text("ok\n")
    deep = _too_deep(live)
    cfg = tmp / "sv.toml"
    cfg.write_text(
        f'[repository]\npath = "{tmp / "repo"}"\n\n'
        "[defaults]\nretry_interval = 0\n\n"
        f'[sets.live]\nsources = ["{live}"]\nopen_files = "try-deny-write"\n\n'
        f'[sets.strict]\nsources = ["{strict}"]\nopen_files = "deny-write"\nretry_times = 0\n'
        "detailed_log = true\n"
    )
    env = _xdg(tmp)
    sv("init", "--config", str(cfg), env_extra=env)
    writers = [_hold(held), _hold(locked)]
    try:
        p = sv("backup", "--all-sets", "--json", "--config", str(cfg), env_extra=env, check=False)
    finally:
        for w in writers:
            w.kill()
            w.wait()
    messages = [json.loads(line) for line in p.stdout.splitlines() if line.startswith("{")]
    yield Ran(cfg, env, held, deep, locked, fine, writers[0].pid, writers[1].pid, p.returncode, messages)


def _sessions(ran: Ran) -> dict[str, dict[str, Any]]:
    return {s["set"]: s for s in ran.json("activity")}


def _by_path(files: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {f["path"]: f for f in files}


def test_backup_of_both_sets_exits_3_and_announces_each_session(ran: Ran) -> None:
    assert ran.exit_code == 3, ran.messages
    announced = [m for m in ran.messages if m["message_type"] == "session"]
    assert [m["set"] for m in announced] == ["live", "strict"]
    summaries = [m for m in ran.messages if m["message_type"] == "summary"]
    assert [(s["files_suspect"], s["files_failed"], s["exit_code"]) for s in summaries] == [
        (1, 1, 3),
        (0, 1, 3),
    ]


def test_activity_lists_both_sessions_with_counts(ran: Ran) -> None:
    sessions = _sessions(ran)
    live, strict = sessions["live"], sessions["strict"]
    assert (live["status"], live["exit_code"]) == ("completed", 3)
    assert live["counts"] == {"ok": 1, "suspect": 1, "failed": 1}
    assert (strict["status"], strict["exit_code"]) == ("completed", 3)
    assert strict["counts"] == {"ok": 1, "suspect": 0, "failed": 1}
    assert live["snapshot_id"] and strict["snapshot_id"] and live["snapshot_id"] != strict["snapshot_id"]
    assert live["bytes_read"] > 0 and live["ended"] is not None
    only_live = ran.json("activity", "--set", "live")
    assert [s["id"] for s in only_live] == [live["id"]]
    assert "completed" in ran.sv("activity").stdout


def _check_live_files(ran: Ran, files: list[dict[str, Any]]) -> None:
    got = _by_path(files)
    assert set(got) == {str(ran.held), str(ran.deep)}
    suspect = got[str(ran.held)]
    assert (suspect["class"], suspect["reason"]) == ("suspect", "open-for-writing")
    assert suspect["writers"] == [{"pid": ran.live_writer, "command": "sleep"}]
    assert f"pid {ran.live_writer}" in suspect["message"]
    failed = got[str(ran.deep)]
    assert (failed["class"], failed["reason"]) == ("failed", "io-error")
    assert "too long" in failed["message"]


def _check_strict_files(ran: Ran, files: list[dict[str, Any]]) -> None:
    got = _by_path(files)
    assert set(got) == {str(ran.locked)}
    failed = got[str(ran.locked)]
    assert (failed["class"], failed["reason"], failed["attempts"]) == ("failed", "open-for-writing", 1)
    assert failed["writers"] == [{"pid": ran.strict_writer, "command": "sleep"}]


@pytest.mark.parametrize("by", ["session", "snapshot"])
def test_report_shows_suspect_and_failed_files_with_writers(ran: Ran, by: str) -> None:
    sessions = _sessions(ran)
    for name, check in (("live", _check_live_files), ("strict", _check_strict_files)):
        s = sessions[name]
        target = str(s["id"]) if by == "session" else s["snapshot_id"][:12]
        report = ran.json("report", target)
        assert report["set"] == name and report["snapshot_id"] == s["snapshot_id"]
        assert report["partial"] is False
        assert report["summary"] == s["counts"]
        check(ran, report["files"])


def test_report_text_table_and_latest(ran: Ran) -> None:
    text = ran.sv("report", "latest").stdout
    assert f"sleep (pid {ran.strict_writer})" in text
    assert str(ran.locked) in text
    assert text.strip().splitlines()[-1].endswith("set strict: 1 ok, 0 suspect, 1 failed")


def test_detailed_log_keeps_ok_files_for_report_all(ran: Ran) -> None:
    sid = str(_sessions(ran)["strict"]["id"])
    everything = _by_path(ran.json("report", sid, "--all")["files"])
    assert everything[str(ran.fine)]["class"] == "ok"
    assert everything[str(ran.locked)]["class"] == "failed"
    live = str(_sessions(ran)["live"]["id"])
    # Without detailed_log only problem files are in the log, --all or not.
    assert {f["class"] for f in ran.json("report", live, "--all")["files"]} == {"suspect", "failed"}


def test_report_of_unknown_session_is_a_usage_error(ran: Ran) -> None:
    p = ran.sv("report", "999", check=False)
    assert p.returncode == 2 and "no session 999" in p.stderr
    p = ran.sv("report", "not-an-id", check=False)
    assert p.returncode == 2 and "neither a session number nor a snapshot id" in p.stderr
