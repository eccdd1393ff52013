"""The live progress display of backup and restore: rich.progress with totals that may still grow.

Shown only to a person at a terminal (``App.interactive``); restic's line is the model:
``35.71% 2 files 355 MiB, total 10008 files 995 MiB, 0 errors ETA 0:07`` plus the current file.
Until the totals are final (the backup's scan or the restore's walk has finished) they are what
has been counted so far, marked "(counting)".
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)


class ProgressDisplay:
    """A rich progress bar fed with the renderer's counts and the scan's totals."""

    def __init__(self, console: Console, unit: str = "files") -> None:
        self.unit = unit
        self.progress = Progress(
            TextColumn("{task.percentage:>6.2f}%", markup=False),
            BarColumn(bar_width=20),
            DownloadColumn(binary_units=True),
            TextColumn("{task.fields[files]}", markup=False),
            TransferSpeedColumn(),
            TextColumn("{task.fields[errors]} errors  ETA", markup=False),
            TimeRemainingColumn(),
            TextColumn("{task.fields[current]}", markup=False),
            console=console,
            transient=True,
            refresh_per_second=4,
        )
        self.task: TaskID = self.progress.add_task("progress", total=None, files="", errors=0, current="")
        self.progress.start()

    def update(
        self, files: int, done: int, errors: int, current: str, totals: tuple[int, int], final: bool
    ) -> None:
        """New counts: files and bytes done, errors, the current file, (files, bytes) in total."""
        total_files = max(totals[0], files)
        total_bytes = max(totals[1], done)
        scanning = "" if final else " (counting)"
        self.progress.update(
            self.task,
            completed=done,
            total=total_bytes or None,
            files=f"{files}/{total_files} {self.unit}{scanning}",
            errors=errors,
            current=current[-60:],
        )

    def print(self, text: str) -> None:
        """A line above the bar (suspect/failed files, retries)."""
        self.progress.console.print(text, markup=False)

    def stop(self) -> None:
        """Remove the bar (call in a finally)."""
        self.progress.stop()


Reading = tuple[int, int, int, str, tuple[int, int], bool]
"""What ``ProgressDisplay.update`` takes: files, bytes, errors, current file, totals, final."""


@contextlib.contextmanager
def polled(display: ProgressDisplay | None, read: Callable[[], Reading]) -> Iterator[None]:
    """Refresh ``display`` from ``read()`` four times a second while the block runs (for work that
    keeps counters instead of sending events, like restore); nothing without a display."""
    if display is None:
        yield
        return
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(0.25):
            display.update(*read())

    thread = threading.Thread(target=loop, name="progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        display.stop()
