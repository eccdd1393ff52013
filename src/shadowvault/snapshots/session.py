"""SnapshotSession: every snapshot one backup session needs, made once and always removed.

On ``__enter__`` the session removes snapshots left by crashed sessions (their
names carry our prefix and a pid that no longer runs). The snapshots
themselves are made in one batch, bracketed by the ``pre_snapshot`` and
``post_snapshot`` shell commands: eagerly in ``__enter__`` for ``REQUIRED``
(so nothing has been read when it fails), on the first ``view()`` call for
``AUTO``. Sources on one volume share its snapshot. ``__exit__`` deletes
everything the session made, also on exceptions, Ctrl-C and SIGTERM (turned
into ``SystemExit(143)`` while the session is open, unless the caller already
handles SIGTERM), with both signals held off while it cleans up.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from shadowvault.errors import SnapshotError
from shadowvault.snapshots.commands import Runner, first_error_line, run_command
from shadowvault.snapshots.interface import SnapshotProvider
from shadowvault.snapshots.model import (
    DEFAULT_PREFIX,
    Handle,
    SnapshotMode,
    Unsupported,
    Volume,
    is_stale_session,
    new_session_id,
)
from shadowvault.snapshots.registry import ProviderSettings, load_providers
from shadowvault.snapshots.view import SnapshotView

__all__ = ["SnapshotSession", "choose_volume", "required_failure"]

#: Sessions open in this process: their snapshots are not stale even though our pid is alive.
_OPEN_SESSIONS: set[str] = set()
_OPEN_LOCK = threading.Lock()
_HELD_SIGNALS = {signal.SIGINT, signal.SIGTERM}


def choose_volume(answers: Sequence[Volume | Unsupported]) -> Volume | str:
    """The first provider's volume, or one line saying why no provider can help."""
    for answer in answers:
        if isinstance(answer, Volume):
            return answer
    if not answers:
        return "no snapshot providers are available"
    return "; ".join(f"{a.provider}: {a.reason}" for a in answers if isinstance(a, Unsupported))


def required_failure(failures: dict[Path, str]) -> str | None:
    """The one-line error for REQUIRED mode, naming the first source that failed."""
    if not failures:
        return None
    source, why = next(iter(failures.items()))
    more = f" (and {len(failures) - 1} more source(s))" if len(failures) > 1 else ""
    return f"snapshot required but {source} cannot be snapshotted: {why}{more}"


def _alive_pids() -> frozenset[int]:
    return frozenset(int(n) for n in os.listdir("/proc") if n.isdigit())


class SnapshotSession:
    """Context manager owning the snapshots of one backup session (see module docstring)."""

    def __init__(
        self,
        mode: SnapshotMode,
        sources: Sequence[Path],
        *,
        pre_snapshot: str | None = None,
        post_snapshot: str | None = None,
        on_message: Callable[[str], None],
        providers: Sequence[SnapshotProvider] | None = None,
        runner: Runner | None = None,
        prefix: str = DEFAULT_PREFIX,
        lvm_snapshot_size: str = "1G",
    ) -> None:
        self.mode = mode
        self.sources = [Path(s) for s in sources]
        self._pre = pre_snapshot
        self._post = post_snapshot
        self._say = on_message
        self._run = runner or run_command
        self._prefix = prefix
        self._providers = list(providers) if providers is not None else None
        self._settings = ProviderSettings(runner=self._run, lvm_snapshot_size=lvm_snapshot_size)
        self.session_id = new_session_id()
        self._lock = threading.RLock()
        self._prepared = False
        self._views: dict[Path, SnapshotView | None] = {}
        self._created: list[tuple[SnapshotProvider, Handle]] = []
        self._old_sigterm: Any = None
        self.leftovers: list[Handle] = []

    # -- context manager -------------------------------------------------------------------------

    def __enter__(self) -> SnapshotSession:
        with _OPEN_LOCK:
            _OPEN_SESSIONS.add(self.session_id)
        self._install_sigterm()
        try:
            if self.mode is not SnapshotMode.OFF:
                if self._providers is None:
                    self._providers = load_providers(self._settings, on_message=self._say)
                self._remove_stale()
            if self.mode is SnapshotMode.REQUIRED:
                self._prepare()
        except BaseException:
            # __exit__ is not called when __enter__ raises: clean up here.
            self._cleanup()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._cleanup()

    # -- what the engine calls -------------------------------------------------------------------

    def view(self, source: Path) -> SnapshotView | None:
        """The point-in-time view of ``source``, or None to read it live (the reason was reported)."""
        if self.mode is SnapshotMode.OFF:
            return None
        with self._lock:
            if not self._prepared:
                self._prepare()
            key = Path(source)
            if key in self._views:
                return self._views[key]
            resolved = Path(os.path.realpath(key))
            for known, found in self._views.items():
                if Path(os.path.realpath(known)) == resolved:
                    return found
        raise SnapshotError(f"{source} is not one of this session's sources")

    @property
    def internal_paths(self) -> tuple[Path, ...]:
        """Live paths of snapshot dirs and work dirs this session made: a walk should skip them."""
        return tuple(h.path for _, h in self._created if h.path is not None)

    # -- internals -------------------------------------------------------------------------------

    def _remove_stale(self) -> None:
        assert self._providers is not None
        with _OPEN_LOCK:
            own = frozenset(_OPEN_SESSIONS)
        alive = _alive_pids()
        for provider in self._providers:
            try:
                found = provider.list_stale(self._prefix)
            except (OSError, SnapshotError) as exc:
                self._say(f"snapshot: cannot look for stale {provider.name} snapshots: {exc}")
                continue
            for handle in found:
                if not is_stale_session(handle.session, alive=alive, own_pid=os.getpid(), own_sessions=own):
                    continue
                try:
                    provider.delete(handle)
                except (OSError, SnapshotError) as exc:
                    self._say(f"snapshot: cannot remove stale {provider.name} snapshot {handle.name}: {exc}")
                else:
                    self._say(
                        f"snapshot: removed stale {provider.name} snapshot {handle.name}"
                        f" left by session {handle.session}"
                    )

    def _prepare(self) -> None:
        """Find every source's volume and snapshot each volume once, between pre and post."""
        assert self._providers is not None
        self._prepared = True
        volume_of: dict[Path, Volume] = {}
        failures: dict[Path, str] = {}
        for source in self.sources:
            chosen = self._find_volume(source)
            if isinstance(chosen, Volume):
                volume_of[source] = chosen
            else:
                failures[source] = chosen
        handles = self._create_all(volume_of, failures)
        by_name = {p.name: p for p in self._providers}
        for source in self.sources:
            volume = volume_of.get(source)
            handle = handles.get((volume.provider, volume.key)) if volume else None
            if volume is None or handle is None:
                self._views[source] = None
                continue
            resolved = Path(os.path.realpath(source))
            self._views[source] = SnapshotView(source, resolved, by_name[volume.provider], handle, self)
        error = required_failure(failures)
        if error is not None and self.mode is SnapshotMode.REQUIRED:
            raise SnapshotError(error)
        for source, why in failures.items():
            self._say(f"snapshot: {source} will be read live: {why}")

    def _find_volume(self, source: Path) -> Volume | str:
        assert self._providers is not None
        resolved = Path(os.path.realpath(source))
        if not os.path.lexists(resolved):
            return f"{source} does not exist"
        answers: list[Volume | Unsupported] = []
        for provider in self._providers:
            try:
                answer = provider.supports(resolved)
            except (OSError, SnapshotError) as exc:
                answer = Unsupported(provider.name, str(exc))
            answers.append(answer)
            if isinstance(answer, Volume):
                break
        return choose_volume(answers)

    def _create_all(
        self, volume_of: dict[Path, Volume], failures: dict[Path, str]
    ) -> dict[tuple[str, str], Handle]:
        """Create each distinct volume's snapshot; record why for sources whose volume failed."""
        assert self._providers is not None
        by_name = {p.name: p for p in self._providers}
        volumes: dict[tuple[str, str], Volume] = {}
        for volume in volume_of.values():
            volumes.setdefault((volume.provider, volume.key), volume)
        handles: dict[tuple[str, str], Handle] = {}
        errors: dict[tuple[str, str], str] = {}
        if not volumes:
            return handles
        try:
            if self._pre:
                pre = self._run(["/bin/sh", "-c", self._pre])
                if not pre.ok:
                    why = f"pre_snapshot command failed: {first_error_line(pre)}"
                    errors = dict.fromkeys(volumes, why)
                    self._say(f"snapshot: {why}")
            for key, volume in volumes.items():
                if key in errors:
                    continue
                try:
                    handle = by_name[volume.provider].create(volume, self._prefix, self.session_id)
                except (OSError, SnapshotError) as exc:
                    errors[key] = str(exc)
                    continue
                self._created.append((by_name[volume.provider], handle))
                handles[key] = handle
                self._say(f"snapshot: {volume.provider} snapshot {handle.name} of {volume.key} created")
        finally:
            # After a failed pre command too: it may have half-quiesced the application.
            if self._post:
                post = self._run(["/bin/sh", "-c", self._post])
                if not post.ok:
                    self._say(f"snapshot: post_snapshot command failed: {first_error_line(post)}")
        for source, volume in volume_of.items():
            key = (volume.provider, volume.key)
            if key in errors:
                failures[source] = errors[key]
        return handles

    def _cleanup(self) -> None:
        """Delete what we made (newest first) with SIGINT/SIGTERM held until done."""
        blocked = self._block_signals()
        try:
            while self._created:
                provider, handle = self._created.pop()
                try:
                    provider.delete(handle)
                except (OSError, SnapshotError) as exc:
                    self.leftovers.append(handle)
                    self._say(f"snapshot: could not remove {provider.name} snapshot {handle.name}: {exc}")
            with _OPEN_LOCK:
                _OPEN_SESSIONS.discard(self.session_id)
            self._restore_sigterm()
        finally:
            if blocked is not None:
                signal.pthread_sigmask(signal.SIG_SETMASK, blocked)

    @staticmethod
    def _block_signals() -> set[int | signal.Signals] | None:
        try:
            return signal.pthread_sigmask(signal.SIG_BLOCK, _HELD_SIGNALS)
        except (OSError, ValueError):
            return None

    def _install_sigterm(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
            return  # the caller already decides what SIGTERM means

        def terminate(signum: int, frame: FrameType | None) -> None:
            raise SystemExit(128 + signum)

        self._old_sigterm = signal.signal(signal.SIGTERM, terminate)

    def _restore_sigterm(self) -> None:
        if self._old_sigterm is not None:
            signal.signal(signal.SIGTERM, self._old_sigterm)
            self._old_sigterm = None
