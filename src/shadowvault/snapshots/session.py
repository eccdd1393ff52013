"""SnapshotSession: every snapshot one backup session needs, made once and always removed.

``SnapshotView`` is one source seen through its volume's snapshot: the engine
walks ``walk_root``, reads what ``open_file`` yields and records original
paths (``to_original`` maps a walked path back). For volume snapshots the walk
happens inside the snapshot; for reflink it is on the live tree and only file
contents come from a clone made at ``open_file``.

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
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
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
    is_stale_session,
    new_session_id,
)
from shadowvault.snapshots.mounts import nested_mounts, read_mounts
from shadowvault.snapshots.registry import ProviderSettings, load_providers

__all__ = ["SnapshotSession", "SnapshotView", "explain", "required_failure"]

#: Sessions open in this process: their snapshots are not stale even though our pid is alive.
_OPEN_SESSIONS: set[str] = set()
_OPEN_LOCK = threading.Lock()
_HELD_SIGNALS = {signal.SIGINT, signal.SIGTERM}


def explain(reasons: Sequence[str]) -> str:
    """One line saying why no provider could give a source a snapshot."""
    return "; ".join(reasons) if reasons else "no snapshot providers are available"


def required_failure(failures: dict[Path, str]) -> str | None:
    """The one-line error for REQUIRED mode, naming the first source that failed."""
    if not failures:
        return None
    source, why = next(iter(failures.items()))
    more = f" (and {len(failures) - 1} more source(s))" if len(failures) > 1 else ""
    return f"snapshot required but {source} cannot be snapshotted: {why}{more}"


@contextmanager
def signals_held() -> Iterator[None]:
    """Defer SIGINT/SIGTERM until the block ends; they are delivered after it, once each.

    A backup has worker threads, and the kernel hands a process-directed signal to any thread
    that does not block it, so blocking it in this thread alone does not hold it. Instead the
    Python handlers (which always run in the main thread) are swapped for one that only takes
    note. Outside the main thread handlers cannot be set; there the block runs unprotected.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []

    def note(signum: int, frame: object) -> None:
        if signum not in pending:
            pending.append(signum)

    previous: dict[signal.Signals, Callable[[int, Any], Any] | int] = {}
    for sig in _HELD_SIGNALS:
        handler = signal.getsignal(sig)
        if handler is not None:  # None: installed outside Python, which we could not restore
            previous[sig] = handler
            signal.signal(sig, note)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for signum in pending:
            signal.raise_signal(signum)


def _alive_pids() -> frozenset[int]:
    return frozenset(int(n) for n in os.listdir("/proc") if n.isdigit())


class SnapshotSession:
    """Context manager owning the snapshots of one backup session (see module docstring)."""

    def __init__(
        self,
        mode: SnapshotMode | str,
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
        self.mode = SnapshotMode(mode)  # also accepts the config strings "off", "auto", "required"
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
        self._open = False
        self._views: dict[Path, SnapshotView | None] = {}
        self._created: list[tuple[SnapshotProvider, Handle]] = []
        self._internal_raw: frozenset[bytes] = frozenset()  # of _created: asked per walked entry
        #: None: pre_snapshot not run yet; "": ran fine (or none set); else why it failed
        self._pre_state: str | None = None
        self._old_sigterm: Any = None
        self.leftovers: list[Handle] = []

    # -- context manager -------------------------------------------------------------------------

    def __enter__(self) -> SnapshotSession:
        with _OPEN_LOCK:
            _OPEN_SESSIONS.add(self.session_id)
        self._open = True
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
            if not self._open:
                raise SnapshotError("the snapshot session is not open (use it as a context manager)")
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

    @property
    def internal_raw(self) -> frozenset[bytes]:
        """``internal_paths`` as raw paths, kept up to date for the walk's per-entry check."""
        return self._internal_raw

    def _created_changed(self) -> None:
        self._internal_raw = frozenset(os.fsencode(p) for p in self.internal_paths)

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
        """Snapshot every source's volume once, pre/post around the batch; apply the mode's rule."""
        assert self._providers is not None
        self._prepared = True
        made: dict[tuple[str, str], Handle] = {}
        failed: dict[tuple[str, str], str] = {}
        failures: dict[Path, str] = {}
        try:
            for source in self.sources:
                found = self._snapshot_source(source, made, failed)
                if isinstance(found, str):
                    failures[source] = found
                    self._views[source] = None
                else:
                    provider, handle = found
                    resolved = Path(os.path.realpath(source))
                    view = SnapshotView(source, resolved, provider, handle, self)
                    self._views[source] = view
                    self._note_nested_mounts(view, resolved)
        finally:
            # After a failed pre command too: it may have half-quiesced the application.
            if self._pre_state is not None and self._post:
                post = self._run(["/bin/sh", "-c", self._post])
                if not post.ok:
                    self._say(f"snapshot: post_snapshot command failed: {first_error_line(post)}")
        error = required_failure(failures)
        if error is not None and self.mode is SnapshotMode.REQUIRED:
            raise SnapshotError(error)
        for source, why in failures.items():
            self._say(f"snapshot: {source} will be read live: {why}")

    def _snapshot_source(
        self, source: Path, made: dict[tuple[str, str], Handle], failed: dict[tuple[str, str], str]
    ) -> tuple[SnapshotProvider, Handle] | str:
        """The first provider whose snapshot of ``source``'s volume exists or can be made, else why not.

        A provider whose create fails does not end the search: the next one
        (reflink after a full btrfs, say) may still give a point-in-time view.
        """
        assert self._providers is not None
        resolved = Path(os.path.realpath(source))
        if not os.path.lexists(resolved):
            return f"{source} does not exist"
        reasons: list[str] = []
        create_failed = False
        for provider in self._providers:
            try:
                answer = provider.supports(resolved)
            except (OSError, SnapshotError) as exc:
                answer = Unsupported(provider.name, str(exc))
            if isinstance(answer, Unsupported):
                reasons.append(f"{provider.name}: {answer.reason}")
                continue
            key = (provider.name, answer.key)
            if key not in made and key not in failed:
                pre_failure = self._run_pre_once()
                if pre_failure is not None:
                    return pre_failure
                try:
                    # Held so that a snapshot which gets made is also recorded for deletion.
                    with signals_held():
                        handle = provider.create(answer, self._prefix, self.session_id)
                        self._created.append((provider, handle))
                        self._created_changed()
                except (OSError, SnapshotError) as exc:
                    failed[key] = str(exc)
                    create_failed = True
                else:
                    # No message for success: callers show every message as a warning.
                    made[key] = handle
            if key in made:
                if create_failed:
                    self._say(f"snapshot: {source} uses {provider.name} ({'; '.join(reasons)})")
                return provider, made[key]
            reasons.append(f"{provider.name}: {failed[key]}")
        return explain(reasons)

    def _note_nested_mounts(self, view: SnapshotView, resolved: Path) -> None:
        """Warn when a volume snapshot hides file systems mounted below the source."""
        if view.walk_root == resolved:
            return  # walked live (reflink): nested mounts are visible, their clones fail per file
        try:
            nested = nested_mounts(resolved, read_mounts())
        except OSError:
            return
        view.nested_mounts = tuple(view.source / p.relative_to(resolved) for p in nested)
        if nested:
            shown = ", ".join(str(p) for p in view.nested_mounts[:3])
            more = f" and {len(nested) - 3} more" if len(nested) > 3 else ""
            self._say(
                f"snapshot: {view.source}: {shown}{more} are other file systems;"
                f" the {view.provider} snapshot shows them as empty directories"
            )

    def _run_pre_once(self) -> str | None:
        """Run pre_snapshot before the first snapshot; None if fine, else why snapshots fail."""
        if self._pre_state is None:
            self._pre_state = ""
            if self._pre:
                pre = self._run(["/bin/sh", "-c", self._pre])
                if not pre.ok:
                    self._pre_state = f"pre_snapshot command failed: {first_error_line(pre)}"
                    self._say(f"snapshot: {self._pre_state}")
        return self._pre_state or None

    def _cleanup(self) -> None:
        """Delete what we made (newest first) with SIGINT/SIGTERM held until done."""
        self._open = False
        with signals_held():
            while self._created:
                provider, handle = self._created.pop()
                self._created_changed()
                try:
                    provider.delete(handle)
                except (OSError, SnapshotError) as exc:
                    self.leftovers.append(handle)
                    self._say(f"snapshot: could not remove {provider.name} snapshot {handle.name}: {exc}")
            with _OPEN_LOCK:
                _OPEN_SESSIONS.discard(self.session_id)
        # After the held block: leaving it puts back the handlers it found, which would be ours.
        self._restore_sigterm()

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


class SnapshotView:
    """Point-in-time access to one source (made by ``SnapshotSession.view``)."""

    def __init__(
        self,
        source: Path,
        resolved: Path,
        provider: SnapshotProvider,
        handle: Handle,
        session: SnapshotSession | None = None,
    ) -> None:
        self.source = source
        self.handle = handle
        self._resolved = resolved
        self._provider = provider
        self._session = session
        self.walk_root = provider.translate(handle, resolved)
        #: Original paths of file systems mounted below the source: empty in a volume snapshot.
        self.nested_mounts: tuple[Path, ...] = ()

    @property
    def provider(self) -> str:
        """Name of the provider behind this view: "btrfs", "reflink", "lvm", "zfs"."""
        return self._provider.name

    @property
    def internal_paths(self) -> tuple[Path, ...]:
        """Snapshot and work dirs of the whole session (live paths) that a walk should skip."""
        if self._session is not None:
            return self._session.internal_paths
        return (self.handle.path,) if self.handle.path is not None else ()

    def _live(self, original: Path) -> Path:
        # Sources may be given through symlinks; the volume knows only resolved paths.
        try:
            rel = Path(original).relative_to(self.source)
        except ValueError:
            return Path(os.path.abspath(original))
        return self._resolved / rel if rel.parts else self._resolved

    def translate(self, original: Path) -> Path:
        """Where ``original`` (a path under the source) can be stat'ed in this view."""
        return self._provider.translate(self.handle, self._live(original))

    def to_original(self, walked: Path) -> Path:
        """Map a path found under ``walk_root`` back to the original path to record."""
        try:
            rel = Path(walked).relative_to(self.walk_root)
        except ValueError:
            raise SnapshotError(f"{walked} is not under this view's walk root {self.walk_root}") from None
        return self.source / rel if rel.parts else self.source

    def open_file(self, original: Path) -> AbstractContextManager[Path]:
        """Context manager yielding the path to read ``original`` from; raises ``SnapshotError``."""
        return self._provider.open_file(self.handle, self._live(original))

    def __repr__(self) -> str:
        return f"SnapshotView({self.provider}, source={self.source}, walk_root={self.walk_root})"
