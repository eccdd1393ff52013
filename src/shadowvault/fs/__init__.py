"""File-system selection: which entries a backup takes, and what we know about each.

Concepts:

* **FileMeta** (:mod:`.meta`) — the metadata of one directory entry from ``lstat`` plus its
  extended attributes. Neutral: it is not the repository's tree node; the engine translates it.
  Paths are ``bytes`` throughout, because Linux file names need not be valid UTF-8.
* **ExcludeMatcher** (:mod:`.excludes`) — restic-style glob patterns (``*``, ``?``, ``[...]``,
  ``**``; a leading ``/`` anchors at the root; a trailing ``/`` means directories only), compiled
  once. A match on a directory covers everything below it.
* **Built-in exclusions** (:mod:`.defaults`) — system and irrelevant files (``/proc``, ``/tmp``,
  swap files, ``pagefile.sys`` …), the Cache Directory Tagging marker ``CACHEDIR.TAG``, and the
  exact runtime paths (repository, state directory, active swap files) never to back up.
* **Selector / walk** (:mod:`.walk`) — the per-entry decision (patterns, exact paths,
  one-file-system, exclude-if-present markers, swap detection) and a depth-first, bytewise-sorted
  walk that hands per-entry errors to an ``on_error`` function instead of raising.

This package reads metadata and directory listings only; file content is the open-file engine's
business (the single exception: the first page of a swap-sized file and a marker's header).
"""

from __future__ import annotations

from shadowvault.fs.defaults import (
    CACHEDIR_TAG,
    CACHEDIR_TAG_SIGNATURE,
    DEFAULT_EXCLUDE_IF_PRESENT,
    active_swap_files,
    default_excludes,
    is_cachedir_tagged,
    is_swap_file,
    runtime_excluded_paths,
)
from shadowvault.fs.excludes import ExcludeMatcher
from shadowvault.fs.meta import FileKind, FileMeta, read_meta
from shadowvault.fs.walk import ErrorFunc, Selector, devices_of, list_dir, walk

__all__ = [
    "CACHEDIR_TAG",
    "CACHEDIR_TAG_SIGNATURE",
    "DEFAULT_EXCLUDE_IF_PRESENT",
    "ErrorFunc",
    "ExcludeMatcher",
    "FileKind",
    "FileMeta",
    "Selector",
    "active_swap_files",
    "default_excludes",
    "devices_of",
    "is_cachedir_tagged",
    "is_swap_file",
    "list_dir",
    "read_meta",
    "runtime_excluded_paths",
    "walk",
]
