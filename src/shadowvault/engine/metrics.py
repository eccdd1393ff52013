"""The status as a node-exporter textfile, so existing Prometheus monitoring sees shadowvault.

``prometheus_client`` builds and escapes the exposition format and writes the file atomically
(temp file in the same directory, then rename), so the textfile collector never reads half a
file. Every metric is a gauge; sets are the ``set`` label, repositories the ``repository`` label.
Today a status covers one repository, the one every set writes to, so each set's series of the
repository size carries that repository.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry, write_to_textfile
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .status import Status

__all__ = ["METRIC_PREFIX", "StatusCollector", "write_textfile"]

METRIC_PREFIX = "shadowvault_"


def _gauge(name: str, doc: str, labels: list[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(METRIC_PREFIX + name, doc, labels=labels)


class StatusCollector(Collector):
    """A ``prometheus_client`` collector over one :class:`Status` (taken before, not per scrape)."""

    def __init__(self, status: Status) -> None:
        self.status = status

    def collect(self) -> Iterator[Metric]:
        """The gauges of every set and repository."""
        success = _gauge(
            "last_success_timestamp_seconds", "End of the last run that wrote a snapshot", ["set"]
        )
        started = _gauge("last_run_timestamp_seconds", "Start of the last run", ["set"])
        duration = _gauge("last_run_duration_seconds", "How long the last finished run took", ["set"])
        exit_code = _gauge(
            "last_run_exit_code", "Exit code of the last run (0 ok, 3 failed, 4 suspect)", ["set"]
        )
        files = _gauge(
            "last_run_files", "Files of the last run per class (ok, suspect, failed)", ["set", "class"]
        )
        added = _gauge("last_run_bytes_added", "Bytes the last run added to the repository", ["set"])
        flagged = _gauge("set_flagged", "1 when the set failed, missed its schedule or never ran", ["set"])
        set_size = _gauge("set_repository_size_bytes", "Size of the repository the set writes to", ["set"])
        for s in self.status.sets:
            run = s.last_run
            if s.last_success is not None and s.last_success.ended is not None:
                success.add_metric([s.name], s.last_success.ended.timestamp())
            if run is not None:
                started.add_metric([s.name], run.started.timestamp())
                if run.duration is not None:
                    duration.add_metric([s.name], run.duration)
                if run.exit_code is not None:
                    exit_code.add_metric([s.name], run.exit_code)
                for cls in ("ok", "suspect", "failed"):
                    files.add_metric([s.name, cls], getattr(run.counts, cls))
                added.add_metric([s.name], run.bytes_added)
            flagged.add_metric([s.name], 1 if s.flagged else 0)
            for repo in self.status.repositories:
                set_size.add_metric([s.name], repo.size_bytes)
        yield from (success, started, duration, exit_code, files, added, flagged, set_size)

        size = _gauge("repository_size_bytes", "Bytes of every repository file", ["repository"])
        snapshots = _gauge("repository_snapshots", "Snapshots in the repository", ["repository"])
        unref = _gauge("repository_unreferenced_bytes", "Data no snapshot references", ["repository"])
        checked = _gauge("repository_last_check_timestamp_seconds", "When check last ran", ["repository"])
        problems = _gauge("repository_last_check_problems", "Problems the last check found", ["repository"])
        for r in self.status.repositories:
            size.add_metric([r.location], r.size_bytes)
            snapshots.add_metric([r.location], r.snapshots)
            if r.unreferenced_bytes is not None:
                unref.add_metric([r.location], r.unreferenced_bytes)
            if r.last_check is not None:
                checked.add_metric([r.location], r.last_check.when.timestamp())
                problems.add_metric([r.location], r.last_check.problems)
        yield from (size, snapshots, unref, checked, problems)


def write_textfile(status: Status, path: Path) -> None:
    """Write the status to ``path`` atomically (the directory must exist; name it ``*.prom``)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StatusCollector(status))
    write_to_textfile(str(path), registry)
