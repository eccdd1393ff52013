"""Progress of multi-phase repository work (prune): a rich bar per phase on a terminal, JSON
status lines with ``--json``, nothing otherwise."""

from __future__ import annotations

import time

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from .app import App

_LABELS = {
    "snapshots": "reading snapshots",
    "packs": "classifying packs",
    "repack": "repacking",
    "index": "writing index files",
    "delete": "deleting files",
}
# Phases whose steps are single writes or deletes: every step is reported, so a reader of
# --json output knows exactly how far prune got; the read-only phases are throttled.
_EVERY_STEP = frozenset({"repack", "index", "delete"})


class PhaseProgress:
    """Callable ``(phase, done, total)``; ``close()`` in a finally."""

    def __init__(self, app: App) -> None:
        self.app = app
        self._last_json = 0.0
        self._bar: Progress | None = None
        self._tasks: dict[str, TaskID] = {}
        if app.interactive:
            self._bar = Progress(
                TextColumn("{task.description:<20}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=app.err,
                transient=False,
            )
            self._bar.start()

    def __call__(self, phase: str, done: int, total: int) -> None:
        if self.app.json:
            now = time.monotonic()
            if phase in _EVERY_STEP or done == total or now - self._last_json >= 0.5:
                self._last_json = now
                self.app.emit({"message_type": "status", "phase": phase, "done": done, "total": total})
            return
        if self._bar is None:
            return
        task = self._tasks.get(phase)
        if task is None:
            task = self._tasks[phase] = self._bar.add_task(_LABELS.get(phase, phase), total=total or None)
        self._bar.update(task, completed=done, total=total or None)

    def close(self) -> None:
        """Stop the live display."""
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
