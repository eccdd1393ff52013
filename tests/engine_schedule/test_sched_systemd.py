"""systemd timers: the cron → OnCalendar conversion judged by systemd itself, unit files verified
by systemd-analyze, install/uninstall through the CLI, and `schedule` / `schedule run`."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from cronsim import CronSim
from sched_helpers import make_repo

from conftest import require_binary
from shadowvault.config import BackupSet
from shadowvault.config.schedule import parse_schedule
from shadowvault.engine.activity import ActivityLog
from shadowvault.engine.systemd import on_calendar, service_unit, timer_unit
from treeutil import PASSWORD, repo_activity_db, sv

BASE = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)  # a Monday
_ELAPSE = re.compile(r"(?:Next elapse|Iter\. #\d+): \w+ (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC")


def systemd_next(calendar: str, count: int) -> list[datetime]:
    p = subprocess.run(
        [
            "systemd-analyze",
            "calendar",
            f"--iterations={count}",
            f"--base-time={BASE.strftime('%Y-%m-%d %H:%M:%S')} UTC",
            calendar,
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "TZ": "UTC"},
        check=True,
    )
    return [datetime.fromisoformat(m).replace(tzinfo=UTC) for m in _ELAPSE.findall(p.stdout)]


@pytest.mark.parametrize(
    "expr",
    [
        "*/15 * * * *",
        "0 2 * * *",
        "30 4 1,15 * *",
        "0 9-17/4 * * mon-fri",
        "0 0 13 * fri",  # day of month OR day of week: two OnCalendar lines
        "5/20 3 * jan,jul *",
        "0 12 * * 7",
        "0 0 29 2 *",
        "15 1 * * sun,sat",
        "weekly sun 03:00",
        "monthly 31 04:30",
        "hourly :07",
    ],
)
@pytest.mark.parametrize("zone", [None, "Europe/Berlin", "America/New_York"])
def test_on_calendar_fires_when_cron_does(expr: str, zone: str | None) -> None:
    require_binary("systemd-analyze")
    count = 12
    calendars = on_calendar(expr, zone)
    ours = sorted({t for c in calendars for t in systemd_next(c, count)})[:count]
    tz = ZoneInfo(zone) if zone else UTC
    it = CronSim(parse_schedule(expr).cron, BASE.astimezone(tz))
    expected = [next(it).astimezone(UTC) for _ in range(count)]
    assert ours == expected, calendars


def test_conversion_text() -> None:
    assert on_calendar("0 9-17/4 * * mon-fri") == ["Mon..Fri *-*-* 09,13,17:00:00"]
    assert on_calendar("0 0 13 * fri", "Europe/Berlin") == [
        "*-*-13 00:00:00 Europe/Berlin",
        "Fri *-*-* 00:00:00 Europe/Berlin",
    ]
    assert on_calendar("*/20 1-4 * * *") == ["*-*-* 01..04:00,20,40:00"]
    with pytest.raises(ValueError, match="no plain list"):
        on_calendar("0 0 L * *")


def _units(tmp: Path, **values: object) -> Path:
    d = tmp / "units"
    d.mkdir()
    bset = BackupSet(name="web").with_overrides(sources=["/srv"], **values)
    for unit in (service_unit(["/usr/bin/shadowvault"], tmp / "cfg.toml"), timer_unit(bset)):
        (d / unit.name).write_text(unit.text)
    return d


def test_generated_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    require_binary("systemd-analyze")
    d = _units(tmp_path, schedule="0 13 * * fri", jitter=900, timezone="Europe/Berlin")
    timer = (d / "shadowvault@web.timer").read_text()
    assert "OnCalendar=*-*-13 00:00:00" not in timer
    assert "OnCalendar=Fri *-*-* 13:00:00 Europe/Berlin" in timer
    assert "Persistent=true" in timer and "RandomizedDelaySec=900" in timer
    assert "FixedRandomDelay=true" in timer
    service = (d / "shadowvault@.service").read_text()
    for line in ("Type=oneshot", "Nice=10", "IOSchedulingClass=idle", "systemd-inhibit --what=sleep"):
        assert line in service
    assert "schedule run --config" in service and "--set %i" in service
    p = subprocess.run(
        ["systemd-analyze", "verify", str(d / "shadowvault@web.timer"), str(d / "shadowvault@.service")],
        capture_output=True,
        text=True,
    )
    assert p.returncode == 0, p.stderr
    assert "shadowvault@" not in p.stderr, p.stderr  # no complaint about our units


def _config(tmp: Path, schedule: str = "0 22 * * *", extra: str = "") -> Path:
    repo = make_repo(tmp / "repo")
    (tmp / "src").mkdir(exist_ok=True)
    (tmp / "src" / "a.txt").write_text("a\n")
    (tmp / "pw").write_text(PASSWORD + "\n")
    cfg = tmp / "cfg.toml"
    cfg.write_text(
        f'[repository]\npath = "{repo}"\npassword_file = "pw"\n'
        f'[sets.web]\nsources = ["{tmp / "src"}"]\nschedule = "{schedule}"\ntimezone = "UTC"\n{extra}'
        f'[sets.manual]\nsources = ["{tmp / "src"}"]\n'
    )
    return cfg


def _user_manager_reachable() -> tuple[bool, str]:
    try:
        p = subprocess.run(
            ["systemctl", "--user", "show-environment"], capture_output=True, text=True, timeout=20
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        return False, str(e)
    return p.returncode == 0, p.stderr.strip()


def _systemctl_user(*args: str) -> subprocess.CompletedProcess[str]:
    p = subprocess.run(["systemctl", "--user", *args], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return p


def test_install_and_uninstall_user_timer(tmp_path: Path) -> None:
    cfg = _config(tmp_path, extra="jitter = 60\n")
    reachable, why = _user_manager_reachable()
    if reachable:
        # A real user manager: link the generated units into it, start the timer, see it listed.
        d = tmp_path / "units"
        sv("schedule", "install", "--unit-dir", str(d), "--set", "web", "--config", str(cfg))
        _systemctl_user("link", str(d / "shadowvault@.service"), str(d / "shadowvault@web.timer"))
        try:
            _systemctl_user("start", "shadowvault@web.timer")
            assert "shadowvault@web.timer" in _systemctl_user("list-timers", "--all").stdout
        finally:
            subprocess.run(["systemctl", "--user", "stop", "shadowvault@web.timer"], check=False)
            subprocess.run(["systemctl", "--user", "disable", "shadowvault@web.timer"], check=False)
            subprocess.run(["systemctl", "--user", "disable", "shadowvault@.service"], check=False)
        return
    # No systemd user manager on this machine (PID 1 is not systemd, or no user bus), so no timer
    # can be started: `install --user` writes the units, says so, and names what to run.
    print(f"no systemd user manager here: {why}")
    home = tmp_path / "home"
    env_extra = {"XDG_CONFIG_HOME": str(home / ".config"), "HOME": str(home)}
    units = home / ".config" / "systemd" / "user"
    p = sv("schedule", "install", "--user", "--config", str(cfg), env_extra=env_extra, check=False)
    assert p.returncode == 1 and "systemctl --user" in p.stderr and "Traceback" not in p.stderr
    timer = (units / "shadowvault@web.timer").read_text()
    assert "OnCalendar=*-*-* 22:00:00 UTC" in timer and "RandomizedDelaySec=60" in timer
    assert "Type=oneshot" in (units / "shadowvault@.service").read_text()
    assert not (units / "shadowvault@manual.timer").exists()  # no schedule, no timer
    sv("schedule", "uninstall", "--user", "--config", str(cfg), env_extra=env_extra, check=False)
    assert not list(units.glob("shadowvault@*"))


def test_install_into_a_directory_and_verify(tmp_path: Path) -> None:
    require_binary("systemd-analyze")
    cfg = _config(tmp_path)
    d = tmp_path / "out"
    sv("schedule", "install", "--unit-dir", str(d), "--set", "web", "--config", str(cfg))
    assert sorted(p.name for p in d.iterdir()) == ["shadowvault@.service", "shadowvault@web.timer"]
    p = subprocess.run(["systemd-analyze", "verify", *map(str, d.iterdir())], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    sv("schedule", "uninstall", "--unit-dir", str(d), "--config", str(cfg))
    assert not list(d.iterdir())
    args = ("schedule", "install", "--unit-dir", str(d), "--set", "manual", "--config", str(cfg))
    bad = sv(*args, check=False)
    assert bad.returncode == 2 and "has no schedule" in bad.stderr


def test_schedule_lists_next_runs_and_flags_overrun(tmp_path: Path) -> None:
    cfg = _config(tmp_path, schedule="0 22 * * *", extra='window = "22:00-23:00"\n')
    state = tmp_path / "state"
    with ActivityLog(repo_activity_db(state, tmp_path / "repo")) as log:
        sid = log.start_session("web", "h", started=time.time() - 7200)
        log.finish_session(
            sid, status="completed", exit_code=0, snapshot_id=None, bytes_read=0, bytes_added=0, counts={}
        )
    env_extra = {"XDG_STATE_HOME": str(state)}
    p = sv("schedule", "--next", "2", "--config", str(cfg), env_extra=env_extra)
    assert "web: 0 22 * * * (UTC), window 22:00-23:00" in p.stdout
    assert p.stdout.count("22:00+00:00") == 2
    assert "likely to overrun: a recent run took 2h00m of a 1h00m budget" in p.stdout
    j = sv("schedule", "--json", "--config", str(cfg), env_extra=env_extra)
    row = json.loads(j.stdout.splitlines()[0])
    assert row["set"] == "web" and len(row["next_runs"]) == 3 and row["likely_overrun"]


def test_schedule_run_outside_the_window_is_missed(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    closed = f"{(now.hour + 2) % 24:02d}:00-{(now.hour + 3) % 24:02d}:00"
    cfg = _config(tmp_path, extra=f'window = "{closed}"\n')
    state = tmp_path / "state"
    p = sv("schedule", "run", "--set", "web", "--config", str(cfg), env_extra={"XDG_STATE_HOME": str(state)})
    assert "outside the window" in p.stderr
    with ActivityLog(repo_activity_db(state, tmp_path / "repo")) as log:
        assert log.sessions("web")[0].status == "missed"
    # Inside the window (none set): it runs.
    cfg2 = _config(tmp_path / "b")
    p = sv("schedule", "run", "--set", "web", "--config", str(cfg2), env_extra={"XDG_STATE_HOME": str(state)})
    assert "web: completed, exit code 0" in p.stderr
