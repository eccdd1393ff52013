"""Issue 17: the pure parts of the web page — chart geometry, loopback test, listen parsing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shadowvault.cli.commands.web import parse_listen
from shadowvault.engine.status import ClassCounts, RunInfo
from shadowvault.errors import UsageError
from shadowvault.web.chart import chart
from shadowvault.web.guard import is_loopback


def run(i: int, *, duration: float | None, added: int, suspect: int) -> RunInfo:
    started = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(days=i)
    return RunInfo(
        session_id=i,
        set_name="s",
        started=started,
        ended=started + timedelta(seconds=duration) if duration is not None else None,
        status="completed" if duration is not None else "interrupted",
        exit_code=4 if suspect else 0,
        counts=ClassCounts(ok=5, suspect=suspect),
        bytes_read=added,
        bytes_added=added,
        snapshot_id="ab" * 32,
    )


def test_chart_has_one_point_per_run_oldest_left_scaled_to_the_largest() -> None:
    newest_first = [
        run(2, duration=None, added=0, suspect=0),
        run(1, duration=20, added=2048, suspect=1),
        run(0, duration=10, added=1024, suspect=0),
    ]
    c = chart(newest_first)
    assert c.runs == 3 and [p.key for p in c.panels] == ["duration", "bytes", "suspect", "failed"]
    for panel in c.panels:
        assert [p.session_id for p in panel.points] == [0, 1, 2]
        xs = [p.x for p in panel.points]
        assert xs == sorted(xs) and xs[0] == c.left and xs[-1] == c.right
        assert all(panel.top <= p.y <= panel.bottom for p in panel.points)
    duration = c.panels[0]
    assert duration.points[1].y == duration.top  # 20 s is the largest
    assert duration.points[0].y == pytest.approx((duration.top + duration.bottom) / 2)
    assert duration.points[2].unfinished and duration.points[2].y == duration.bottom
    assert "did not finish" in duration.points[2].label
    assert c.panels[1].scale == "2.0 KiB" and c.panels[3].scale == "0"
    assert all(p.y == c.panels[3].bottom for p in c.panels[3].points)  # no failed files: on the axis


def test_loopback_names() -> None:
    assert all(is_loopback(h) for h in ("localhost", "127.0.0.1", "127.3.4.5", "::1", "[::1]"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "192.0.2.1", "::", "example.org", ""))


def test_listen_addresses() -> None:
    assert parse_listen("127.0.0.1:8484") == ("127.0.0.1", 8484)
    assert parse_listen("[::1]:9000") == ("::1", 9000)
    for bad in ("8484", "localhost:", "host:99999", ":80"):
        with pytest.raises(UsageError):
            parse_listen(bad)
