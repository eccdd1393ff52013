"""Issue 5: backup sets from the config file, validation before any I/O, default exclusions,
stop_on_errors and sessions that survive kill -9 — all through `python -m shadowvault`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import require_binary
from shadowvault.config import parse_config
from shadowvault.engine.sets import backup_options, choose_sets, worst_exit_code
from shadowvault.errors import ConfigError, UsageError
from shadowvault.openfiles import RetryPolicy, Strategy
from shadowvault.snapshots import SnapshotMode
from treeutil import env, sv

CACHEDIR_SIGNATURE = b"Signature: 8a477f597d28d172789f06886806bc55"


def xdg(tmp: Path) -> dict[str, str]:
    """Per-test state, data and config directories, so the activity log and the default
    repository of one test are never seen by another (or by the machine's own)."""
    return {
        "XDG_STATE_HOME": str(tmp / "xdg-state"),
        "XDG_DATA_HOME": str(tmp / "xdg-data"),
        "XDG_CONFIG_HOME": str(tmp / "xdg-config"),
    }


def json_lines(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


class Writers:
    """Real processes (`sleep`) holding files open for writing, started and reaped per test."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def hold(self, *paths: Path) -> subprocess.Popen[bytes]:
        """One `sleep` process with every path open O_WRONLY|O_APPEND (fds 3, 4, …)."""
        redirs = " ".join(f"{3 + i}>>'{p}'" for i, p in enumerate(paths))
        proc = subprocess.Popen(["sh", "-c", f"exec {redirs} sleep 300"])
        self.procs.append(proc)
        wanted = {str(p) for p in paths}
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                fds = os.listdir(f"/proc/{proc.pid}/fd")
                held = {os.readlink(f"/proc/{proc.pid}/fd/{fd}") for fd in fds}
                comm = Path(f"/proc/{proc.pid}/comm").read_text().strip()
            except OSError:
                held, comm = set(), ""
            if wanted <= held and comm == "sleep":
                return proc
            time.sleep(0.01)
        raise AssertionError(f"writer never opened {wanted}")

    def stop(self) -> None:
        for proc in self.procs:
            proc.kill()
            proc.wait()


@pytest.fixture
def writers() -> Iterator[Writers]:
    w = Writers()
    yield w
    w.stop()


# ----- inheritance ------------------------------------------------------------------------------


def test_sets_show_effective_values_with_their_origin(tmp_path: Path) -> None:
    cfg = tmp_path / "sv.toml"
    cfg.write_text(
        "[defaults]\n"
        'open_files = "deny-write"\n'
        "retry_times = 5\n"
        'exclude = ["**/*.tmp"]\n'
        "[sets.web]\n"
        'sources = ["/srv/www"]\n'
        "retry_times = 2\n"
        'schedule = "daily"\n'
        "[sets.mail]\n"
        'sources = ["/var/mail"]\n'
        'open_files = "allow-write"\n'
        "retention = { keep_daily = 7 }\n"
    )
    x = xdg(tmp_path)
    listed = json.loads(sv("sets", "--json", "--config", str(cfg), env_extra=x).stdout)
    assert [(s["name"], s["sources"], s["schedule"]) for s in listed] == [
        ("web", ["/srv/www"], "daily"),
        ("mail", ["/var/mail"], None),
    ]
    assert listed[0]["next_run"] is not None and listed[1]["next_run"] is None

    web = json.loads(sv("sets", "show", "web", "--json", "--config", str(cfg), env_extra=x).stdout)
    opts = web["options"]
    assert opts["retry_times"] == {"value": 2, "origin": "set"}
    assert opts["open_files"] == {"value": "deny-write", "origin": "defaults"}
    assert opts["exclude"] == {"value": ["**/*.tmp"], "origin": "defaults"}
    assert opts["retry_interval"] == {"value": 10, "origin": "built-in"}
    assert opts["sources"]["origin"] == "set"
    assert "/proc/*" in web["builtin_excludes"]["patterns"]
    assert "pagefile.sys" in web["builtin_excludes"]["patterns"]

    mail = json.loads(sv("sets", "show", "mail", "--json", "--config", str(cfg), env_extra=x).stdout)
    opts = mail["options"]
    assert opts["open_files"] == {"value": "allow-write", "origin": "set"}
    assert opts["retry_times"] == {"value": 5, "origin": "defaults"}
    assert opts["retention.keep_daily"] == {"value": 7, "origin": "set"}
    assert opts["retention.keep_weekly"] == {"value": 0, "origin": "built-in"}

    text = sv("sets", "show", "web", "--config", str(cfg), env_extra=x).stdout
    assert "[defaults]" in text and "[set]" in text and "hiberfil.sys" in text
    unknown = sv("sets", "show", "wbe", "--config", str(cfg), env_extra=x, check=False)
    assert unknown.returncode == 2 and "did you mean 'web'" in unknown.stderr


# ----- validation before any I/O ----------------------------------------------------------------

_BAD = {
    "unknown key": ("retry_tmes = 3", "retry_tmes", "did you mean"),
    "wrong type": ('retry_times = "three"', "retry_times", "integer"),
    "retry_times out of range": ("retry_times = 12", "retry_times", "0–10"),
    "retry_interval out of range": ("retry_interval = 1000", "retry_interval", "0–999"),
    "bad enum": ('open_files = "deny-writes"', "open_files", "try-deny-write"),
}


@pytest.mark.parametrize("case", list(_BAD))
def test_config_errors_exit_2_with_file_and_line_before_the_repository(tmp_path: Path, case: str) -> None:
    bad_line, key, allowed = _BAD[case]
    repo = tmp_path / "repo"
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("data\n")
    lines = [
        "[repository]",
        f'path = "{repo}"',
        "",
        "[defaults]",
        "retry_interval = 1",
        "",
        "[sets.web]",
        f'sources = ["{src}"]',
        bad_line,
    ]
    cfg = tmp_path / "sv.toml"
    cfg.write_text("\n".join(lines) + "\n")
    x = xdg(tmp_path)
    for args in (["backup", "--set", "web"], ["backup", str(src)], ["sets", "show", "web"]):
        p = sv(*args, "--config", str(cfg), env_extra=x, check=False)
        assert p.returncode == 2, (args, p.stdout, p.stderr)
        message = p.stderr.strip()
        assert len(message.splitlines()) == 1, message
        assert f"{cfg}:{len(lines)}:" in message and key in message and allowed in message, message
    assert not repo.exists()
    assert not (tmp_path / "xdg-data").exists(), "the default repository was created"
    assert not (tmp_path / "xdg-state").exists(), "the activity log was written"


def test_out_of_range_flags_exit_2_before_the_repository(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    x = xdg(tmp_path)
    for flags, allowed in ((["--retry-times", "12"], "0–10"), (["--retry-interval", "1000"], "0–999")):
        p = sv("backup", *flags, str(src), env_extra=x, check=False)
        assert p.returncode == 2 and allowed in p.stderr and flags[0] in p.stderr, p.stderr
    assert not (tmp_path / "xdg-data").exists() and not (tmp_path / "xdg-state").exists()


# ----- default exclusions -----------------------------------------------------------------------


def test_default_exclusions_keep_swap_cache_and_repository_out(tmp_path: Path) -> None:
    mkswap = require_binary("mkswap")
    tree = tmp_path / "tree"
    (tree / "docs").mkdir(parents=True)
    (tree / "docs" / "report.txt").write_text("keep me\n")
    (tree / "docs" / "pagefile.sys").write_bytes(b"\0" * 4096)
    # A real swap area under a name no pattern knows: only its content gives it away.
    swap = tree / "docs" / "disk.img"
    with open(swap, "wb") as f:
        f.truncate(1024 * 1024)
    subprocess.run([mkswap, str(swap)], check=True, capture_output=True)
    (tree / "cache").mkdir()
    (tree / "cache" / "CACHEDIR.TAG").write_bytes(CACHEDIR_SIGNATURE + b"\n# a cache\n")
    (tree / "cache" / "blob.bin").write_bytes(b"x" * 1000)
    repo = tree / "repo"  # the repository lives inside the tree it backs up
    cfg = tmp_path / "sv.toml"
    cfg.write_text(f'[repository]\npath = "{repo}"\n\n[sets.home]\nsources = ["{tree}"]\n')
    x = xdg(tmp_path)
    sv("init", "--config", str(cfg), env_extra=x)
    p = sv("backup", "--set", "home", "--json", "--config", str(cfg), env_extra=x)
    summary = [m for m in json_lines(p.stdout) if m["message_type"] == "summary"][-1]
    assert summary["exit_code"] == 0 and summary["files_failed"] == 0
    listed = json_lines(sv("ls", "latest", "--json", "--config", str(cfg), env_extra=x).stdout)
    paths = {m["path"] for m in listed}
    assert str(tree / "docs" / "report.txt") in paths
    assert str(swap) not in paths
    assert str(tree / "docs" / "pagefile.sys") not in paths
    assert str(tree / "cache" / "blob.bin") not in paths
    assert not any(p == str(repo) or p.startswith(f"{repo}/") for p in paths), sorted(paths)
    snaps = json.loads(sv("snapshots", "--json", "--config", str(cfg), env_extra=x).stdout)
    assert snaps[-1]["tags"] == ["home"]

    # Overridable per run: without the built-in list, Windows' pagefile.sys is backed up.
    sv("backup", "--set", "home", "--no-default-excludes", "--config", str(cfg), env_extra=x)
    listed = json_lines(sv("ls", "latest", "--json", "--config", str(cfg), env_extra=x).stdout)
    assert str(tree / "docs" / "pagefile.sys") in {m["path"] for m in listed}


# ----- stop_on_errors ---------------------------------------------------------------------------


def test_stop_on_errors_writes_a_partial_snapshot_and_exits_3(tmp_path: Path, writers: Writers) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for name in ("a-held.db", "b-held.db", "c-plain.txt"):
        (src / name).write_text(f"{name}\n")
    writers.hold(src / "a-held.db", src / "b-held.db")
    repo = tmp_path / "repo"
    cfg = tmp_path / "sv.toml"
    cfg.write_text(
        f'[repository]\npath = "{repo}"\n\n[sets.db]\nsources = ["{src}"]\n'
        'open_files = "deny-write"\nretry_times = 0\nstop_on_errors = 1\n'
    )
    x = xdg(tmp_path)
    sv("init", "--config", str(cfg), env_extra=x)
    p = sv("backup", "--set", "db", "--json", "--config", str(cfg), env_extra=x, check=False)
    assert p.returncode == 3, p.stdout + p.stderr
    messages = json_lines(p.stdout)
    summary = [m for m in messages if m["message_type"] == "summary"][-1]
    assert summary["partial"] is True and summary["files_failed"] == 1
    snaps = json.loads(sv("snapshots", "--json", "--config", str(cfg), env_extra=x).stdout)
    assert "partial" in snaps[-1]["tags"] and "db" in snaps[-1]["tags"]
    # Each repository has its own activity log (issue 16): name the repository.
    sessions = json.loads(sv("activity", "--json", "--config", str(cfg), env_extra=x).stdout)
    assert len(sessions) == 1
    s = sessions[0]
    assert (s["set"], s["status"], s["exit_code"]) == ("db", "partial", 3)
    assert s["snapshot_id"] == summary["snapshot_id"]
    assert any("stop_on_errors" in w for w in s["warnings"]), s["warnings"]
    report = json.loads(
        sv("report", summary["snapshot_id"][:10], "--json", "--config", str(cfg), env_extra=x).stdout
    )
    assert report["partial"] is True
    assert [f["path"] for f in report["files"]] == [str(src / "a-held.db")]


# ----- a killed session -------------------------------------------------------------------------


def test_kill_9_leaves_the_session_interrupted(tmp_path: Path, writers: Writers) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "held.log").write_text("busy\n")
    writer = writers.hold(src / "held.log")
    repo = tmp_path / "repo"
    x = xdg(tmp_path)
    sv("init", repo=repo, env_extra=x)
    # deny-write with a long retry interval: the session waits for the writer and stays open.
    proc = subprocess.Popen(
        [sys.executable, "-m", "shadowvault", "backup", "--json", "--open-files", "deny-write",
         "--retry-times", "5", "--retry-interval", "600", str(src)],
        env=env(repo, **x), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        seen: list[dict[str, Any]] = []
        for line in proc.stdout:
            seen.append(json.loads(line))
            if seen[-1]["message_type"] == "file_retry":
                break
        assert [m["message_type"] for m in seen][:1] == ["session"], seen
        running = json.loads(sv("activity", "--json", repo=repo, env_extra=x).stdout)
        assert [(r["id"], r["status"], r["set"]) for r in running] == [
            (seen[0]["session_id"], "running", None)
        ]
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert writer.poll() is None, "the writer must have outlived the backup"
    after = json.loads(sv("activity", "--json", repo=repo, env_extra=x).stdout)
    assert [(r["status"], r["exit_code"], r["snapshot_id"]) for r in after] == [("interrupted", None, None)]
    text = sv("activity", repo=repo, env_extra=x).stdout
    assert "interrupted" in text


# ----- the mapping itself (pure) ----------------------------------------------------------------


def test_backup_options_map_config_strings_to_engine_values() -> None:
    cfg = parse_config(
        "[defaults]\nretry_times = 4\nretry_interval = 7\nretry_on_change = true\n"
        '[sets.db]\nsources = ["/srv/db"]\nopen_files = "prevent-write"\nsnapshot = "auto"\n'
        'tags = ["nightly"]\nstop_on_errors = 3\nexclude = ["**/*.tmp"]\n'
        '[sets.lite]\ntype = "sqlite"\nsources = ["/srv/app.db"]\n'
    )
    opts = backup_options(cfg.effective("db").values, excluded_paths=["/repo"], host="h")
    assert opts.strategy is Strategy.PREVENT_WRITE
    assert opts.snapshot_mode is SnapshotMode.AUTO
    assert opts.retry == RetryPolicy(times=4, interval=7, on_change=True)
    assert (opts.tags, opts.set_name, opts.stop_on_errors) == (["db", "nightly"], "db", 3)
    assert (opts.sources, opts.excludes, opts.excluded_paths, opts.host) == (
        ["/srv/db"],
        ["**/*.tmp"],
        ["/repo"],
        "h",
    )
    plain = backup_options(cfg.defaults_set().with_overrides(sources=["/x"]).values)
    assert (plain.set_name, plain.tags, plain.strategy) == (None, [], Strategy.TRY_DENY_WRITE)
    lite = backup_options(cfg.effective("lite").values)
    assert (lite.sqlite_set, lite.sources) == (True, ["/srv/app.db"])
    assert [e.values.name for e in choose_sets(cfg, [], all_sets=True, paths=[])] == ["db", "lite"]
    assert [e.values.name for e in choose_sets(cfg, ["lite", "db", "lite"], all_sets=False, paths=[])] == [
        "lite",
        "db",
    ]
    assert choose_sets(None, [], all_sets=False, paths=["/x"])[0].origin["retry_times"] == "built-in"
    assert choose_sets(cfg, [], all_sets=False, paths=["/x"])[0].origin["retry_times"] == "defaults"
    for names, all_sets, paths in ((["db"], True, []), ([], True, ["/x"]), (["db", "lite"], False, ["/x"])):
        with pytest.raises(UsageError):
            choose_sets(cfg, names, all_sets=all_sets, paths=paths)
    with pytest.raises(UsageError, match="configuration file"):
        choose_sets(None, ["db"], all_sets=False, paths=[])
    with pytest.raises(ConfigError, match="did you mean 'db'"):
        choose_sets(cfg, ["dbb"], all_sets=False, paths=[])
    assert worst_exit_code([0, 4, 3, 0]) == 3
    assert worst_exit_code([3, 1, 4]) == 1
    assert worst_exit_code([0, 4]) == 4
    assert worst_exit_code([]) == 0
