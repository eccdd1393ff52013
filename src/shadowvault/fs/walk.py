"""Which entries of a directory tree a backup takes, and an ordered walk over them.

The engine's tree builder recurses on its own (it needs to build one repository tree per
directory), so the pieces it uses are separate: :func:`list_dir` gives a directory's names in the
order trees are stored (bytewise sorted), and :class:`Selector` answers "is this entry backed up?"
and "do we look inside this directory?". :func:`walk` strings them together for simple consumers
and tests.

Selection rules, in the order :meth:`Selector.exclusion_reason` applies them:

1. exact excluded paths (the repository, the client's state directory, active swap files);
2. exclude patterns (:class:`~shadowvault.fs.excludes.ExcludeMatcher`);
3. one-file-system: a non-directory on a device outside ``root_devices`` is skipped; a directory
   there is a mount point and is kept, empty — :meth:`Selector.descend` says not to enter it (as
   restic does, so a restore recreates the mount point);
4. exclude-if-present: a directory holding a marker file (``CACHEDIR.TAG`` with its signature,
   or ``NAME:HEADER`` entries) is skipped with everything in it;
5. swap detection by content for regular files of plausible size.

Per-entry problems (a directory we may not read, a file that vanished) go to the caller's
``on_error(path, error)`` and never stop the walk.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator

from shadowvault.fs.defaults import (
    could_be_swap,
    default_excludes,
    has_marker,
    is_swap_file,
    parse_marker,
    runtime_excluded_paths,
)
from shadowvault.fs.excludes import ExcludeMatcher
from shadowvault.fs.meta import FileMeta, read_meta

__all__ = ["ErrorFunc", "Selector", "devices_of", "list_dir", "walk"]

ErrorFunc = Callable[[bytes, OSError], None]


def list_dir(path: bytes) -> list[bytes]:
    """Names in directory ``path`` (no ``.``/``..``), sorted bytewise; raises ``OSError``."""
    return sorted(os.listdir(path))


def devices_of(roots: Iterable[bytes | str]) -> set[int]:
    """The devices the given backup roots live on (following a symlinked root), for
    one-file-system. Roots that cannot be stat'ed are left out; the walk reports them."""
    devices: set[int] = set()
    for root in roots:
        try:
            devices.add(os.stat(root).st_dev)
        except OSError:
            continue
    return devices


class Selector:
    """Decides, per entry, whether the backup takes it and whether to enter a directory.

    ``excludes``: compiled patterns; ``exclude_if_present``: marker file names (``NAME`` or
    ``NAME:HEADER``); ``one_file_system`` with ``root_devices`` (see :func:`devices_of`);
    ``extra_excluded_paths``: exact absolute paths to skip; ``detect_swap``: look inside regular
    files of swap-like size for a swap signature.
    """

    def __init__(
        self,
        excludes: ExcludeMatcher,
        exclude_if_present: list[str],
        one_file_system: bool,
        root_devices: set[int],
        extra_excluded_paths: set[bytes],
        *,
        detect_swap: bool = True,
    ) -> None:
        self.excludes = excludes
        self.markers = [parse_marker(m) for m in exclude_if_present if m]
        self.one_file_system = one_file_system
        self.root_devices = set(root_devices)
        self.extra_excluded_paths = {os.path.normpath(p) for p in extra_excluded_paths}
        self.detect_swap = detect_swap

    @classmethod
    def for_roots(
        cls,
        roots: Iterable[bytes | str],
        *,
        exclude: list[str],
        exclude_if_present: list[str],
        one_file_system: bool,
        use_default_excludes: bool = True,
        excluded_paths: Iterable[bytes | str | None] = (),
    ) -> Selector:
        """The usual assembly for a backup of ``roots``: the set's patterns plus (unless turned
        off) the built-in ones, root devices for one-file-system, and the exact runtime paths
        (``excluded_paths``: repository, state directory; active swap files are added).

        A built-in pattern that would exclude one of the roots is dropped: naming ``/tmp/build``
        as a source is an explicit request for it. The set's own patterns always apply.
        ``ValueError`` names a malformed pattern.
        """
        absolute = [os.path.abspath(os.fsencode(r)) for r in roots]
        patterns = list(exclude)
        if use_default_excludes:
            builtin = [
                p
                for p in default_excludes()
                if not any(ExcludeMatcher([p]).matches(r, True) for r in absolute)
            ]
            patterns = builtin + patterns
        return cls(
            ExcludeMatcher(patterns),
            exclude_if_present,
            one_file_system,
            devices_of(absolute),
            runtime_excluded_paths(*excluded_paths),
        )

    def exclusion_reason(self, path: bytes, meta: FileMeta) -> str | None:
        """Why ``path`` is not backed up (a short phrase for logs), or ``None`` when it is."""
        # Asked for every entry of a backup: plain attribute reads rather than properties.
        is_dir = meta.kind == "dir"
        if self.extra_excluded_paths and self._normal(path) in self.extra_excluded_paths:
            return "excluded path"
        # The combined regex answers the common "not excluded" case in one scan; only a hit pays
        # for finding which pattern it was.
        if self.excludes.matches(path, is_dir):
            return f"exclude pattern {self.excludes.first_match(path, is_dir)!r}"
        if self.one_file_system and not is_dir and meta.device not in self.root_devices:
            return "on another file system"
        if is_dir:
            marker = self.marker_in(path)
            if marker is not None:
                return f"contains {marker}"
        elif self.detect_swap and meta.kind == "file" and could_be_swap(meta.size) and is_swap_file(path):
            return "swap file"
        return None

    @staticmethod
    def _normal(path: bytes) -> bytes:
        if b"//" in path or b"/." in path or path.endswith(b"/"):
            return os.path.normpath(path)
        return path

    def selected(self, path: bytes, meta: FileMeta) -> bool:
        """True when the entry at ``path`` is backed up."""
        return self.exclusion_reason(path, meta) is None

    def descend(self, path: bytes, meta: FileMeta) -> bool:
        """True when the walk should enter directory ``path`` (false for mount points under
        one-file-system and for anything that is not a directory)."""
        if not meta.is_dir:
            return False
        return not self.one_file_system or meta.device in self.root_devices

    def marker_in(self, path: bytes) -> str | None:
        """The name of the first exclude-if-present marker found in directory ``path``."""
        for name, header in self.markers:
            if has_marker(path, name, header):
                return name
        return None

    def dir_excluded_by_marker(self, path: bytes) -> bool:
        """True when directory ``path`` holds one of the exclude-if-present markers."""
        return self.marker_in(path) is not None


def walk(
    roots: Iterable[bytes], selector: Selector, on_error: ErrorFunc, *, with_xattrs: bool = True
) -> Iterator[tuple[bytes, FileMeta]]:
    """Yield ``(path, meta)`` for every selected entry under ``roots``, depth first, each
    directory before its contents and siblings in bytewise order.

    Roots are made absolute and taken in the order given (duplicates once); a root is subject
    to the same selection as everything else. Errors go to ``on_error`` and the walk goes on.
    ``with_xattrs=False`` leaves ``meta.xattrs`` empty (one ``listxattr`` less per entry).
    """
    seen: set[bytes] = set()
    for root in roots:
        root = os.path.abspath(root)
        if root in seen:
            continue
        seen.add(root)
        try:
            meta = read_meta(root, with_xattrs=with_xattrs)
        except OSError as e:
            on_error(root, e)
            continue
        if not selector.selected(root, meta):
            continue
        yield root, meta
        if selector.descend(root, meta):
            yield from _walk_below(root, selector, on_error, with_xattrs)


def _children(path: bytes, on_error: ErrorFunc) -> list[bytes]:
    try:
        names = list_dir(path)
    except OSError as e:
        on_error(path, e)
        return []
    prefix = path if path.endswith(b"/") else path + b"/"  # os.path.join, without its per-call checks
    return [prefix + name for name in names]


def _walk_below(
    top: bytes, selector: Selector, on_error: ErrorFunc, with_xattrs: bool
) -> Iterator[tuple[bytes, FileMeta]]:
    # An explicit stack of iterators: deep trees must not hit Python's recursion limit.
    stack: list[Iterator[bytes]] = [iter(_children(top, on_error))]
    while stack:
        path = next(stack[-1], None)
        if path is None:
            stack.pop()
            continue
        try:
            meta = read_meta(path, with_xattrs=with_xattrs)
        except OSError as e:
            on_error(path, e)
            continue
        if not selector.selected(path, meta):
            continue
        yield path, meta
        if selector.descend(path, meta):
            stack.append(iter(_children(path, on_error)))
