"""EventSink implementations: a live progress line for people, JSON lines for programs.

Only ``suspect`` and ``failed`` files are listed individually (every file in
``--json`` mode would drown the signal); the summary always closes the output.
"""

from __future__ import annotations

import time
from typing import Any

from rich.live import Live
from rich.text import Text

from shadowvault.engine.events import (
    Event,
    FileDone,
    FileRetryScheduled,
    Progress,
    SessionSummary,
    Warning_,
)

from .app import App


def human_bytes(n: float) -> str:
    """1536 → '1.5 KiB'."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def outcome_line(path: str, outcome: dict[str, Any]) -> str:
    """'suspect  /var/log/x.log: open for writing by rsyslogd (pid 512)'."""
    return f"{outcome.get('class', '?'):<8} {path}: {outcome.get('message') or outcome.get('reason', '')}"


class BackupRenderer:
    """Renders a backup session's events on the App's output."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.start = time.monotonic()
        self.files = 0
        self.bytes = 0
        self.current = ""
        self._last_json = 0.0
        self.live: Live | None = None
        if app.interactive:
            self.live = Live(Text(""), console=app.err, refresh_per_second=4, transient=True)
            self.live.start()

    def close(self) -> None:
        """Stop the live display (call in a finally)."""
        if self.live is not None:
            self.live.stop()
            self.live = None

    def __call__(self, event: Event) -> None:
        if isinstance(event, FileDone):
            self.files += 1
            self.bytes += event.size
            self.current = event.path
            # Problems, and databases copied through SQLite (which say so, with their writer).
            shown = event.outcome.get("reason") == "sqlite-online-backup"
            if shown or event.outcome.get("class") not in (None, "ok"):
                if self.app.json:
                    self.app.emit({"message_type": "file", "path": event.path, **event.outcome})
                else:
                    self._line(outcome_line(event.path, event.outcome))
            self._status()
        elif isinstance(event, FileRetryScheduled):
            if self.app.json:
                self.app.emit(event.to_json())
            elif self.live is not None:
                self._line(
                    f"retry    {event.path}: attempt {event.attempt} {event.reason}, "
                    f"again in {event.delay:g} s"
                )
        elif isinstance(event, Warning_):
            self.app.warn(event.message)
        elif isinstance(event, Progress):
            self._status()
        elif isinstance(event, SessionSummary):
            self.close()
            self._summary(event)

    def _line(self, text: str) -> None:
        if self.live is not None:
            self.live.console.print(text, markup=False)
        else:
            self.app.err.print(text, markup=False)

    def _status(self) -> None:
        elapsed = max(time.monotonic() - self.start, 1e-6)
        if self.app.json:
            now = time.monotonic()
            if now - self._last_json >= 1.0:
                self._last_json = now
                self.app.emit(
                    {
                        "message_type": "status",
                        "files_done": self.files,
                        "bytes_done": self.bytes,
                        "seconds_elapsed": round(elapsed, 1),
                        "current_file": self.current,
                    }
                )
            return
        if self.live is not None:
            rate = human_bytes(self.bytes / elapsed)
            self.live.update(
                Text(f"{self.files} files, {human_bytes(self.bytes)}, {rate}/s  {self.current}"[:200])
            )

    def _summary(self, s: SessionSummary) -> None:
        if self.app.json:
            self.app.emit(s.to_json())
            return
        app = self.app
        app.print(
            f"Files: {s.files_ok} ok, {s.files_suspect} suspect, {s.files_failed} failed "
            f"({s.files_unchanged} unchanged, {s.files_read} read)"
        )
        app.print(f"Added to the repository: {human_bytes(s.bytes_added)} in {s.data_blobs_added} new blobs")
        app.print(f"Processed {human_bytes(s.bytes_read)} in {s.duration:.1f} s")
        if s.snapshot_id:
            partial = " (partial: stopped after too many failed files)" if s.partial else ""
            app.print(f"snapshot {s.snapshot_id[:8]} saved{partial}")
        if s.files_suspect:
            app.print(
                "Suspect files were backed up with potential integrity problems: see `shadowvault report`."
            )
        if s.files_failed:
            app.print("Failed files are NOT in the snapshot: see `shadowvault report` for the reasons.")
