"""systemd timers for scheduled sets: cron → ``OnCalendar=``, unit texts, where they go (pure).

One template service ``shadowvault@.service`` runs ``shadowvault schedule run --set %i``; one
``shadowvault@NAME.timer`` per set starts it. The service is ``Type=oneshot``, ``Nice=10``,
``IOSchedulingClass=idle`` and wrapped in ``systemd-inhibit --what=sleep`` so the machine does not
suspend in the middle of a backup. ``stop_at`` and ``window`` are enforced by ``schedule run``
itself (``RuntimeMaxSec=`` has no effect on oneshot services); ``Persistent=true`` makes systemd
start a run missed while the machine was off, which ``schedule run`` then performs or records
as ``missed`` according to the window. ``jitter`` becomes ``RandomizedDelaySec=`` with
``FixedRandomDelay=true``: the delay is derived from machine and timer name, fixed per set and host.

Conversion: each cron field is expanded (by cronsim's parser) and written as a systemd list with
``A..B`` ranges. Debian cron ORs day-of-month and day-of-week when both are restricted; systemd
ANDs them, so such an expression becomes two ``OnCalendar=`` lines. One difference remains and is
documented: for a time that does not exist on the night clocks go forward, cron runs the job
after the gap and systemd skips that day.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

from shadowvault.config import BackupSet
from shadowvault.config.schedule import cron_fields, parse_schedule

__all__ = [
    "SERVICE_NAME",
    "UnitFile",
    "install_units",
    "installed_timers",
    "on_calendar",
    "service_unit",
    "systemctl",
    "timer_name",
    "timer_unit",
    "unit_dir",
]

SERVICE_NAME = "shadowvault@.service"
_DAY_NAMES = ("Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat")


@dataclass(frozen=True)
class UnitFile:
    """A unit's file name and text."""

    name: str
    text: str


def _ranges(values: list[int], full: range, width: int, names: tuple[str, ...] = ()) -> str:
    """``[1, 2, 3, 5]`` → ``"01..03,05"``; the whole range → ``"*"``."""
    if values == list(full):
        return "*"
    parts: list[str] = []
    i = 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and values[j + 1] == values[j] + 1:
            j += 1

        def show(v: int) -> str:
            return names[v] if names else f"{v:0{width}d}"

        if j - i >= 2:
            parts.append(f"{show(values[i])}..{show(values[j])}")
        else:
            parts.extend(show(v) for v in values[i : j + 1])
        i = j + 1
    return ",".join(parts)


def on_calendar(schedule: str, timezone: str | None = None) -> list[str]:
    """The ``OnCalendar=`` values of a schedule (one, or two for cron's day OR weekday)."""
    minutes, hours, days, months, weekdays, ored = cron_fields(parse_schedule(schedule).cron)
    time_part = f"{_ranges(hours, range(24), 2)}:{_ranges(minutes, range(60), 2)}:00"
    month = _ranges(months, range(1, 13), 2)
    zone = f" {timezone}" if timezone else ""
    dom = _ranges(days, range(1, 32), 2)
    dow = _ranges(weekdays, range(7), 0, _DAY_NAMES)
    if ored:
        return [f"*-{month}-{dom} {time_part}{zone}", f"{dow} *-{month}-* {time_part}{zone}"]
    prefix = "" if dow == "*" else f"{dow} "
    return [f"{prefix}*-{month}-{dom} {time_part}{zone}"]


def timer_name(set_name: str) -> str:
    """The timer unit of a set."""
    return f"shadowvault@{set_name}.timer"


def unit_dir(user: bool, home: Path, xdg_config_home: str | None) -> Path:
    """Where units are installed: the user's systemd directory or the administrator's."""
    if not user:
        return Path("/etc/systemd/system")
    base = Path(xdg_config_home) if xdg_config_home else home / ".config"
    return base / "systemd" / "user"


def service_unit(command: list[str], config: Path, environment: dict[str, str] | None = None) -> UnitFile:
    """The template service; ``command`` starts shadowvault (e.g. its console script)."""
    run = shlex.join([*command, "schedule", "run", "--config", str(config)]) + " --set %i"
    env_lines = "".join(f"Environment={shlex.quote(f'{k}={v}')}\n" for k, v in (environment or {}).items())
    text = f"""# Written by `shadowvault schedule install`; `shadowvault schedule uninstall` removes it.
[Unit]
Description=shadowvault backup set %i
After=network-online.target
Wants=network-online.target

[Service]
Type=oneshot
# Hold off suspend while the set runs; stop_at and window are enforced by shadowvault itself
# (RuntimeMaxSec= does not apply to oneshot services).
ExecStart=/usr/bin/systemd-inhibit --what=sleep --who=shadowvault --why="backup of set %i" --mode=block {run}
{env_lines}Nice=10
IOSchedulingClass=idle
KillSignal=SIGTERM
TimeoutStopSec=300
"""
    return UnitFile(SERVICE_NAME, text)


def timer_unit(bset: BackupSet) -> UnitFile:
    """The timer of one scheduled set."""
    if not bset.schedule:
        raise ValueError(f"set {bset.name!r} has no schedule")
    calendars = "".join(f"OnCalendar={c}\n" for c in on_calendar(bset.schedule, bset.timezone))
    jitter = f"RandomizedDelaySec={bset.jitter}\nFixedRandomDelay=true\n" if bset.jitter else ""
    text = f"""# Written by `shadowvault schedule install` from schedule = {bset.schedule!r}.
[Unit]
Description=shadowvault schedule of set {bset.name}

[Timer]
{calendars}Persistent=true
{jitter}Unit=shadowvault@{bset.name}.service

[Install]
WantedBy=timers.target
"""
    return UnitFile(timer_name(bset.name), text)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def systemctl(user: bool, *args: str) -> tuple[bool, str]:
    """Run systemctl (``--user`` for the user's manager); ``(ok, what it said)``."""
    cmd = ["systemctl", *(["--user"] if user else []), *args]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        return False, str(e)
    return p.returncode == 0, (p.stderr or p.stdout).strip()


def install_units(directory: Path, units: list[UnitFile]) -> list[Path]:
    """Write the unit files (each atomically); returns their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for unit in units:
        path = directory / unit.name
        _write_atomic(path, unit.text)
        written.append(path)
    return written


def installed_timers(directory: Path) -> list[str]:
    """Names of the shadowvault timers in ``directory``."""
    if not directory.is_dir():
        return []
    return sorted(p.name for p in directory.glob("shadowvault@*.timer"))
