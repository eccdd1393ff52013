"""The daemon loop with a controlled clock and real backups into a real repository."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sched_helpers import Harness, make_source, utc

from conftest import require_binary
from shadowvault.config import BackupSet
from shadowvault.engine.activity import ActivityLog
from shadowvault.engine.timing import jitter_offset
from shadowvault.errors import ConfigError
from shadowvault.repo import LocalBackend, Repository
from treeutil import PASSWORD, restic


def bset(name: str, src: Path, **values: object) -> BackupSet:
    return BackupSet(name=name).with_overrides(sources=[str(src)], timezone="UTC", **values)


@pytest.fixture
def activity(tmp_path: Path) -> ActivityLog:
    log = ActivityLog(tmp_path / "state" / "activity.db")
    yield log  # type: ignore[misc]
    log.close()


def statuses(activity: ActivityLog, name: str) -> list[str]:
    return [r.status for r in reversed(activity.sessions(name))]


def test_two_due_sets_run_in_order_never_together(tmp_path: Path, activity: ActivityLog) -> None:
    require_binary("restic")
    a = make_source(tmp_path / "a")
    b = make_source(tmp_path / "b")
    sets = [
        bset("beta", b, schedule="0 22 * * *", window="22:00-05:00"),
        bset("alpha", a, schedule="0 22 * * *", window="22:00-05:00"),
    ]
    h = Harness(tmp_path, sets, utc(2026, 3, 10, 12, 0), activity)
    h.run_until(utc(2026, 3, 11, 12, 0))
    assert [(o.set_name, o.status) for o in h.outcomes] == [("alpha", "completed"), ("beta", "completed")]
    rows = sorted(activity.sessions(), key=lambda r: r.id)
    assert [r.set_name for r in rows] == ["alpha", "beta"]
    # One repository, one session at a time: the second opened after the first closed.
    first, second = [activity.session(r.id) for r in rows]
    assert first is not None and second is not None and first.ended is not None
    assert all(r.started == utc(2026, 3, 10, 22, 0) for r in rows)
    repo = Repository.open(LocalBackend(h.repo), PASSWORD)
    try:
        assert len(list(repo.list_snapshots())) == 2
        assert not list((h.repo / "locks").iterdir())
    finally:
        repo.close()
    restic("check", "--read-data", repo=h.repo)


def test_run_missed_during_downtime_is_recorded_and_next_is_on_time(
    tmp_path: Path, activity: ActivityLog
) -> None:
    src = make_source(tmp_path / "src")
    sets = [bset("web", src, schedule="0 22 * * *", window="22:00-05:00")]
    # The set last ran on the 10th; the daemon was down until the 12th 06:00 (window closed).
    Harness(tmp_path, sets, utc(2026, 3, 10, 21, 0), activity).run_until(utc(2026, 3, 11, 0, 0))
    h = Harness(tmp_path, sets, utc(2026, 3, 12, 6, 0), activity)
    h.run_until(utc(2026, 3, 13, 1, 0))
    assert [o.status for o in h.outcomes] == ["missed", "completed"]
    rows = list(reversed(activity.sessions("web")))
    assert [r.status for r in rows] == ["completed", "missed", "completed"]
    assert rows[1].started == utc(2026, 3, 11, 22, 0)  # the run that was missed
    assert any("missed: the daemon was not running; the window ended" in w for w in rows[1].warnings)
    assert rows[2].started == utc(2026, 3, 12, 22, 0)  # the next one, on time


def test_catch_up_runs_once_inside_the_window(tmp_path: Path, activity: ActivityLog) -> None:
    src = make_source(tmp_path / "src")
    sets = [bset("web", src, schedule="0 * * * *", window="22:00-05:00")]
    Harness(tmp_path, sets, utc(2026, 3, 10, 21, 30), activity).run_until(utc(2026, 3, 10, 22, 30))
    assert statuses(activity, "web") == ["completed"]
    # Down from 22:30 to 02:20: four hourly runs were missed; one is caught up at 02:20.
    h = Harness(tmp_path, sets, utc(2026, 3, 11, 2, 20), activity)
    h.run_until(utc(2026, 3, 11, 2, 59))
    assert [o.status for o in h.outcomes] == ["completed"]
    rows = list(reversed(activity.sessions("web")))
    assert rows[-1].started == utc(2026, 3, 11, 2, 20)
    assert any("catching up" in line for line in h.lines)


def test_queued_set_whose_window_closed_is_missed(tmp_path: Path, activity: ActivityLog) -> None:
    """Two sets due together; the first "takes" past the window's end, so the second is missed."""
    a = make_source(tmp_path / "a")
    b = make_source(tmp_path / "b")
    sets = [
        bset("alpha", a, schedule="0 4 * * *", window="04:00-05:00"),
        bset("beta", b, schedule="0 4 * * *", window="04:00-05:00"),
    ]
    h = Harness(tmp_path, sets, utc(2026, 3, 10, 3, 0), activity)

    def slow(line: str) -> None:
        if line.startswith("set alpha: starting"):
            h.clock.t += timedelta(hours=2)  # alpha's run lasts two hours of the daemon's clock

    h.log_hooks.append(slow)
    h.run_until(utc(2026, 3, 10, 7, 0))
    assert [(o.set_name, o.status) for o in h.outcomes] == [("alpha", "completed"), ("beta", "missed")]


@pytest.mark.parametrize(
    ("overlap", "expected"),
    [("skip", ["completed", "missed", "completed"]), ("queue", ["completed", "completed", "completed"])],
)
def test_overlap_policy(tmp_path: Path, activity: ActivityLog, overlap: str, expected: list[str]) -> None:
    src = make_source(tmp_path / "src")
    sets = [bset("web", src, schedule="0 * * * *", overlap=overlap)]
    h = Harness(tmp_path, sets, utc(2026, 3, 10, 0, 30), activity)
    runs = {"n": 0}

    def slow_first(line: str) -> None:
        if line.startswith("set web: starting"):
            runs["n"] += 1
            if runs["n"] == 1:
                h.clock.t += timedelta(minutes=90)  # the 01:00 run still goes at 02:00

    h.log_hooks.append(slow_first)
    h.run_until(utc(2026, 3, 10, 3, 30))
    assert [o.status for o in h.outcomes] == expected


def test_reload_with_bad_config_keeps_the_old_one(tmp_path: Path, activity: ActivityLog) -> None:
    src = make_source(tmp_path / "src")
    good = [bset("web", src, schedule="0 22 * * *")]
    h = Harness(tmp_path, good, utc(2026, 3, 10, 12, 0), activity)
    h.daemon._apply(good, h.clock.now(), initial=True)

    def broken() -> list[BackupSet]:
        raise ConfigError('cfg.toml:3: [sets.web] window = "22" is not valid')

    h.daemon.load_sets = broken
    h.daemon.request_reload()
    h.daemon.step()
    assert any("reload failed, keeping the previous one" in line for line in h.lines)
    assert list(h.daemon.sets) == ["web"]
    nxt = h.daemon.sets["web"].next
    assert nxt is not None and nxt.fire == utc(2026, 3, 10, 22, 0)
    # A good reload replaces it.
    h.daemon.load_sets = lambda: [bset("web", src, schedule="0 23 * * *")]
    h.daemon.request_reload()
    h.daemon.step()
    nxt = h.daemon.sets["web"].next
    assert nxt is not None and nxt.fire == utc(2026, 3, 10, 23, 0)


def test_failing_before_hook_prevents_the_run(tmp_path: Path, activity: ActivityLog) -> None:
    src = make_source(tmp_path / "src")
    marker = tmp_path / "after-ran"
    sets = [
        bset(
            "web",
            src,
            schedule="0 22 * * *",
            before_backup="echo database not quiesced >&2; exit 7",
            on_failure=f'echo "$SHADOWVAULT_EXIT_CODE $SHADOWVAULT_STATUS" > {marker}',
        )
    ]
    h = Harness(tmp_path, sets, utc(2026, 3, 10, 21, 0), activity)
    h.run_until(utc(2026, 3, 10, 23, 0))
    assert [o.status for o in h.outcomes] == ["failed"]
    assert h.opened == []  # the repository was never touched
    rec = activity.sessions("web")[0]
    assert any("before_backup hook exited 7: database not quiesced" in w for w in rec.warnings)
    assert marker.read_text().split() == ["1", "failed"]


def test_daemon_starts_at_firing_plus_the_sets_fixed_jitter(tmp_path: Path, activity: ActivityLog) -> None:
    src = make_source(tmp_path / "src")
    sets = [bset("web", src, schedule="0 22 * * *", jitter=1800)]
    h = Harness(tmp_path, sets, utc(2026, 3, 10, 12, 0), activity)
    h.run_until(utc(2026, 3, 11, 23, 0))
    offset = jitter_offset("web", "testhost", 1800)
    assert timedelta(0) < offset <= timedelta(seconds=1800)
    started = sorted(r.started for r in activity.sessions("web"))
    assert started == [utc(2026, 3, 10, 22, 0) + offset, utc(2026, 3, 11, 22, 0) + offset]
