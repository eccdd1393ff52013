"""The live progress display of a backup: rich.progress with totals from the concurrent scan.

Shown only to a person at a terminal (``App.interactive``); restic's line is the model:
``35.71% 2 files 355 MiB, total 10008 files 995 MiB, 0 errors ETA 0:07`` plus the current file.
Until the scan has finished, the totals are what it has counted so far (they only grow).
"""

from __future__ import annotations

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

from shadowvault.engine.scan import TotalsScan


class ProgressDisplay:
    """A rich progress bar fed with the renderer's counts and the scan's totals."""

    def __init__(self, console: Console, scan: TotalsScan | None) -> None:
        self.scan = scan
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
        self.task: TaskID = self.progress.add_task("backup", total=None, files="", errors=0, current="")
        self.progress.start()

    def update(self, files: int, done: int, errors: int, current: str) -> None:
        """New counts: files and bytes done, failed files, the file being read."""
        total_files = self.scan.files if self.scan else 0
        total_bytes = max(self.scan.bytes if self.scan else 0, done)
        scanning = "" if self.scan is None or self.scan.done else " (counting)"
        self.progress.update(
            self.task,
            completed=done,
            total=total_bytes or None,
            files=f"{files}/{total_files} files{scanning}",
            errors=errors,
            current=current[-60:],
        )

    def print(self, text: str) -> None:
        """A line above the bar (suspect/failed files, retries)."""
        self.progress.console.print(text, markup=False)

    def stop(self) -> None:
        """Remove the bar (call in a finally)."""
        self.progress.stop()
