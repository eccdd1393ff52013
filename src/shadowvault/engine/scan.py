"""Totals for the progress display: a concurrent walk counting what a backup will look at.

restic's scanner runs beside the archiver so the progress line can show a percentage and an ETA;
this is the same: a daemon thread walks the sources with the backup's own selection rules (its
excludes, markers, one-file-system) and counts regular files and their bytes. The counts only
grow; ``done`` says the walk finished. It reads metadata only and is stopped when the session
ends, finished or not. :func:`dry_run` is the same walk done in the foreground for
``backup --dry-run``, keeping what it would save and what it leaves out and why.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from typing import Any

from shadowvault.fs import Selector, list_dir, read_meta, walk

from .backup import BackupOptions


class TotalsScan:
    """Counts the files and bytes under ``options.sources`` beside the backup.

    The walk runs in a child process (``python -m shadowvault.fs.count``, see there why) whose
    running totals a daemon thread reads; where no child can be started it runs in that thread.
    """

    def __init__(self, options: BackupOptions) -> None:
        self.files = 0
        self.bytes = 0
        self.done = False
        self._stop = threading.Event()
        self._options = options
        self._child: subprocess.Popen[str] | None = None
        self._thread = threading.Thread(target=self._run, name="scan", daemon=True)

    def start(self) -> TotalsScan:
        """Start counting; returns self."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the walk (the counts stay as they are)."""
        self._stop.set()
        child = self._child
        if child is not None and child.poll() is None:
            child.kill()
            child.wait()

    def _spec(self) -> dict[str, Any]:
        opt = self._options
        return {
            "roots": list(opt.sources),
            "exclude": list(opt.excludes),
            "exclude_if_present": list(opt.exclude_if_present),
            "one_file_system": opt.one_file_system,
            "use_default_excludes": opt.use_default_excludes,
            "excluded_paths": [str(p) for p in opt.excluded_paths],
        }

    def _run(self) -> None:
        try:
            child = self._start_child()
        except OSError:
            child = None  # no interpreter to start (dropped privileges, say): count here
        if self._stop.is_set():
            return
        if child is None:
            self._run_here()
        else:
            self._read(child)

    def _start_child(self) -> subprocess.Popen[str] | None:
        env = dict(os.environ)
        # The child imports this package from where the parent did (a checkout, a virtualenv).
        here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env["PYTHONPATH"] = os.pathsep.join(p for p in (here, env.get("PYTHONPATH")) if p)
        child = subprocess.Popen(
            [sys.executable, "-m", "shadowvault.fs.count"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            text=True,
            errors="replace",
        )
        self._child = child
        assert child.stdin is not None
        try:
            with child.stdin:
                if not self._stop.is_set():
                    child.stdin.write(json.dumps(self._spec()))
        except OSError:
            self._stop.set()
        if self._stop.is_set():  # stopped while it started
            self.stop()
            assert child.stdout is not None
            child.stdout.close()
        return child

    def _read(self, child: subprocess.Popen[str]) -> None:
        assert child.stdout is not None
        with child.stdout:
            for line in child.stdout:
                words = line.split()
                final = words[:1] == ["done"]
                if final:
                    words = words[1:]
                if len(words) != 2 or not all(w.isdigit() for w in words):
                    break
                self.files, self.bytes = int(words[0]), int(words[1])
                if final:
                    self.done = True
                    break
        child.wait()

    def _run_here(self) -> None:
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
            for _, meta in walk(roots, selector, lambda _path, _err: None, with_xattrs=False):
                if self._stop.is_set():
                    return
                if stat.S_ISREG(meta.mode):
                    self.files += 1
                    self.bytes += meta.size
        except (OSError, ValueError):
            return  # totals are a nicety: the backup reports real problems itself
        self.done = True


@dataclass
class DryRun:
    """What ``backup --dry-run`` found: entries it would save, and what is excluded and why."""

    files: int = 0
    dirs: int = 0
    other: int = 0
    bytes: int = 0
    included: list[str] = field(default_factory=list)
    excluded: list[tuple[str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def dry_run(options: BackupOptions) -> DryRun:
    """Walk the sources with the backup's selection rules without reading or writing anything."""
    selector = Selector.for_roots(
        options.sources,
        exclude=options.excludes,
        exclude_if_present=options.exclude_if_present,
        one_file_system=options.one_file_system,
        use_default_excludes=options.use_default_excludes,
        excluded_paths=options.excluded_paths,
    )
    result = DryRun()
    stack = [os.path.abspath(os.fsencode(s)) for s in reversed(options.sources)]
    while stack:
        path = stack.pop()
        try:
            meta = read_meta(path)
        except OSError as e:
            result.errors.append(f"{os.fsdecode(path)}: {e.strerror}")
            continue
        reason = selector.exclusion_reason(path, meta)
        if reason is not None:
            result.excluded.append((os.fsdecode(path), reason))
            continue
        result.included.append(os.fsdecode(path))
        if stat.S_ISREG(meta.mode):
            result.files += 1
            result.bytes += meta.size
        elif meta.is_dir:
            result.dirs += 1
        else:
            result.other += 1
        if selector.descend(path, meta):
            try:
                names = list_dir(path)
            except OSError as e:
                result.errors.append(f"{os.fsdecode(path)}: {e.strerror}")
                continue
            stack.extend(os.path.join(path, n) for n in reversed(names))
    return result
