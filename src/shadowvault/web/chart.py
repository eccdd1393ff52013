"""The run chart: the last runs of a set as four small panels (duration, bytes added, suspect,
failed files), laid out here and drawn as SVG by the template, so the page needs no script.

Pure geometry: runs in, coordinates out. Every run is one point in every panel, oldest on the
left; a run that never finished has no duration and is drawn at zero, marked ``unfinished``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from shadowvault.engine.status import RunInfo

__all__ = ["WIDTH", "Chart", "Panel", "Point", "chart"]

WIDTH = 640
PANEL_HEIGHT = 48
_LEFT = 70  # room for the panel's title and scale
_RIGHT = 12
_TOP = 16
_GAP = 18
_FOOT = 14  # the dates of the first and last run under the panels


@dataclass(frozen=True)
class Point:
    """One run in one panel: position, the value shown on hover, and the run it belongs to."""

    x: float
    y: float
    label: str
    session_id: int
    unfinished: bool


@dataclass(frozen=True)
class Panel:
    """One measure over the runs."""

    key: str
    title: str
    top: float
    bottom: float
    scale: str
    points: tuple[Point, ...]

    @property
    def polyline(self) -> str:
        """The ``points`` attribute of the line through the points."""
        return " ".join(f"{p.x:.1f},{p.y:.1f}" for p in self.points)


@dataclass(frozen=True)
class Chart:
    """All panels of one set's chart and the SVG's size."""

    width: int
    height: int
    left: int
    right: int
    panels: tuple[Panel, ...]
    runs: int
    first: str
    last: str


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def _panel(
    key: str,
    title: str,
    index: int,
    runs: Sequence[RunInfo],
    value: Callable[[RunInfo], float | None],
    fmt: Callable[[float], str],
) -> Panel:
    top = _TOP + index * (PANEL_HEIGHT + _GAP)
    bottom = top + PANEL_HEIGHT
    values = [value(r) for r in runs]
    actual = max((v for v in values if v is not None), default=0.0)
    highest = actual or 1.0  # all zero: the points lie on the axis
    span = WIDTH - _LEFT - _RIGHT
    step = span / max(len(runs) - 1, 1)
    points = []
    for i, (run, v) in enumerate(zip(runs, values, strict=True)):
        x = _LEFT + (i * step if len(runs) > 1 else span / 2)
        y = bottom - (v or 0.0) / highest * PANEL_HEIGHT
        when = run.started.astimezone().strftime("%Y-%m-%d %H:%M")
        label = f"{when}: {fmt(v) if v is not None else 'did not finish'}"
        points.append(Point(x, y, label, run.session_id, v is None))
    return Panel(key, title, top, bottom, fmt(actual), tuple(points))


def chart(runs_newest_first: Sequence[RunInfo]) -> Chart:
    """The chart of these runs (as the activity log lists them, newest first)."""
    runs = list(reversed(runs_newest_first))
    panels = (
        _panel("duration", "duration", 0, runs, lambda r: r.duration, lambda v: f"{v:.1f} s"),
        _panel("bytes", "bytes added", 1, runs, lambda r: float(r.bytes_added), _human),
        _panel("suspect", "suspect files", 2, runs, lambda r: float(r.counts.suspect), lambda v: f"{v:.0f}"),
        _panel("failed", "failed files", 3, runs, lambda r: float(r.counts.failed), lambda v: f"{v:.0f}"),
    )
    height = _TOP + len(panels) * (PANEL_HEIGHT + _GAP) + _FOOT
    first = runs[0].started.astimezone().strftime("%Y-%m-%d %H:%M") if runs else ""
    last = runs[-1].started.astimezone().strftime("%Y-%m-%d %H:%M") if runs else ""
    return Chart(WIDTH, height, _LEFT, WIDTH - _RIGHT, panels, len(runs), first, last)
