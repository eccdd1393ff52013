"""Totals for the progress display: a concurrent walk counting what a backup will look at.

restic's scanner runs beside the archiver so the progress line can show a percentage and an ETA;
this is the same: a daemon thread walks the sources with the backup's own selection rules (its
excludes, markers, one-file-system) and counts regular files and their bytes. The counts only
grow; ``done`` says the walk finished. It reads metadata only and is stopped when the session
ends, finished or not.
"""

from __future__ import annotations

import os
import stat
import threading

from shadowvault.fs import Selector, walk

from .backup import BackupOptions


class TotalsScan:
    """Counts the files and bytes under ``options.sources`` in a background thread."""

    def __init__(self, options: BackupOptions) -> None:
        self.files = 0
        self.bytes = 0
        self.done = False
        self._stop = threading.Event()
        self._options = options
        self._thread = threading.Thread(target=self._run, name="scan", daemon=True)

    def start(self) -> TotalsScan:
        """Start counting; returns self."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the walk (the counts stay as they are)."""
        self._stop.set()

    def _run(self) -> None:
        opt = self._options
        try:
            selector = Selector.for_roots(
                opt.sources,
                exclude=opt.excludes,
                exclude_if_present=opt.exclude_if_present,
                one_file_system=opt.one_file_system,
                use_default_excludes=opt.use_default_excludes,
                excluded_paths=opt.excluded_paths,
            )
            roots = [os.fsencode(s) for s in opt.sources]
            for _, meta in walk(roots, selector, lambda _path, _err: None):
                if self._stop.is_set():
                    return
                if stat.S_ISREG(meta.mode):
                    self.files += 1
                    self.bytes += meta.size
        except (OSError, ValueError):
            return  # totals are a nicety: the backup reports real problems itself
        self.done = True
