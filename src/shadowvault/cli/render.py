"""EventSink implementations: a live progress line for people, JSON lines for programs.

Only ``suspect`` and ``failed`` files are listed individually (every file in
``--json`` mode would drown the signal); the summary always closes the output.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

from shadowvault.engine.events import (
    Event,
    FileDone,
    FileRetryScheduled,
    FilesUnchanged,
    Progress,
    SessionSummary,
    SubtreeUnchanged,
    Warning_,
)

from .app import App
from .progress import ProgressDisplay

if TYPE_CHECKING:
    from shadowvault.engine.scan import TotalsScan


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


def dump_line(path: str, dump: dict[str, Any]) -> str:
    """'/.shadowvault/postgresql/db-5432/app.dump: 1.2 GiB in 41.0 s, postgresql 15.18'."""
    version = dump.get("server_version") or "version unknown"
    return (
        f"{path}: {human_bytes(float(dump.get('size') or 0))} in {float(dump.get('duration') or 0):.1f} s, "
        f"{dump.get('type', '?')} {version}"
    )


class BackupRenderer:
    """Renders a backup session's events on the App's output."""

    def __init__(self, app: App, scan: TotalsScan | None = None) -> None:
        self.app = app
        self.scan = scan
        self.start = time.monotonic()
        self.files = 0
        self.bytes = 0
        self.errors = 0
        self.current = ""
        self._last_json = 0.0
        self.live: ProgressDisplay | None = None
        if app.interactive:
            self.live = ProgressDisplay(app.err)

    def close(self) -> None:
        """Stop the live display and the scan (call in a finally)."""
        if self.scan is not None:
            self.scan.stop()
        if self.live is not None:
            self.live.stop()
            self.live = None

    def __call__(self, event: Event) -> None:
        if isinstance(event, FileDone):
            self.files += 1
            self.bytes += event.size
            self.current = event.path
            klass = event.outcome.classification.value
            if klass == "failed":
                self.errors += 1
            self._verbose(event)
            # Problems, and databases copied through SQLite (which say so, with their writer);
            # -q keeps only the failures.
            problem = event.outcome.problem
            via_sqlite = event.outcome.via_sqlite
            if klass == "failed" or ((problem or via_sqlite) and not self.app.quiet):
                if self.app.json:
                    self.app.emit({"message_type": "file", "path": event.path, **event.outcome.to_json()})
                else:
                    self._line(outcome_line(event.path, event.outcome.to_json()))
            self._status()
        elif isinstance(event, SubtreeUnchanged):
            # Only without -vv (which lists every unchanged file, so the session names them).
            self.files += len(event)
            self.bytes += event.total_size
            self.current = os.fsdecode(event.path)
            self._status()
        elif isinstance(event, FilesUnchanged):
            self.files += len(event)
            self.bytes += event.total_size
            self.current = os.fsdecode(event.paths[-1])
            if self.app.verbose >= 2 and not self.app.quiet:
                for path, size in event.files():
                    self._verbose_line("unchanged", path, size)
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
            if not self.app.quiet or self.app.json:  # -q: nothing but errors
                self.app.warn(event.message)
        elif isinstance(event, Progress):
            self._status()
        elif isinstance(event, SessionSummary):
            if self.app.json:
                # One last status line with the final counts: status lines come at most once a
                # second, so a backup shorter than that would otherwise leave only its first
                # (all zero) line, and a consumer's last percentage would never reach the end.
                self.app.emit(self._status_json(max(time.monotonic() - self.start, 1e-6)))
            self.close()
            self._summary(event)

    def _verbose(self, event: FileDone) -> None:
        # restic's -v: new and modified files; -vv also the unchanged ones.
        level = self.app.verbose
        if not level or self.app.quiet or event.outcome.classification.value == "failed":
            return
        if event.reused:
            if level < 2:
                return
            status = "unchanged"
        else:
            status = "modified" if event.in_parent else "new"
        self._verbose_line(status, event.path, event.size)

    def _verbose_line(self, status: str, path: str, size: int) -> None:
        if self.app.json:
            self.app.emit(
                {"message_type": "verbose_status", "action": status, "item": path, "data_size": size}
            )
        else:
            self._line(f"{status:<10}{path}, {human_bytes(size)}")

    def _line(self, text: str) -> None:
        if self.live is not None:
            self.live.print(text)
        else:
            self.app.err.print(text, markup=False)

    def _status(self) -> None:
        elapsed = max(time.monotonic() - self.start, 1e-6)
        if self.app.json:
            now = time.monotonic()
            if now - self._last_json >= 1.0:
                self._last_json = now
                self.app.emit(self._status_json(elapsed))
            return
        if self.live is not None:
            scan = self.scan
            totals = (scan.files, scan.bytes) if scan else (0, 0)
            final = scan is None or scan.done
            self.live.update(self.files, self.bytes, self.errors, self.current, totals, final)

    def _status_json(self, elapsed: float) -> dict[str, Any]:
        # restic's status fields, so its JSON consumers read ours.
        doc: dict[str, Any] = {
            "message_type": "status",
            "seconds_elapsed": round(elapsed, 1),
            "files_done": self.files,
            "bytes_done": self.bytes,
            "error_count": self.errors,
            "current_files": [self.current] if self.current else [],
        }
        if self.scan is not None:
            total = max(self.scan.bytes, self.bytes)
            doc["total_files"] = max(self.scan.files, self.files)
            doc["total_bytes"] = total
            doc["percent_done"] = self.bytes / total if total else 0.0
            if self.scan.done and self.bytes:
                doc["seconds_remaining"] = round(elapsed * (total - self.bytes) / self.bytes)
        return doc

    def _summary(self, s: SessionSummary) -> None:
        if self.app.json:
            self.app.emit(s.to_json())
            return
        if self.app.quiet:
            return  # -q: cron mails only when something failed (the failed files were listed)
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
