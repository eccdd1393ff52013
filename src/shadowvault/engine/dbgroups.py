"""Database groups met by the walk: which files are SQLite databases, which are their companions.

A SQLite database is its file plus ``NAME-journal`` (rollback mode) or ``NAME-wal`` and
``NAME-shm`` (WAL mode). The walk lists directories in sorted byte order, and a companion's
name is its database's name plus a suffix, so the database always comes first: by the time a
companion is reached, its database has been recognised (by its 16-byte header, read from bytes
the engine reads anyway) and the companion's fate is decided by the group.

Costs, since every file of every backup passes here: recognising companions is one
``bytes.endswith`` per listed name; a header is looked at only in the first block the engine
already read, except for files that have companions in their listing (one ``pread`` of 16
bytes) or whose read was refused because of a writer. Nothing else opens or stats a file.

Pure decisions (which outcome a group of raw reads gets) live in :func:`group_verdict`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from shadowvault.openfiles import Classification, FileOutcome, Reason, WriterInfo
from shadowvault.openfiles.model import describe_writers
from shadowvault.openfiles.writers import COMPANION_SUFFIXES, main_file_of

__all__ = [
    "COMPANION_SUFFIXES",
    "DatabaseNames",
    "MemberState",
    "group_verdict",
    "member_states",
    "present_companions",
    "torn_outcome",
]


class DatabaseNames:
    """What the session knows about database groups, by original path (bytes)."""

    def __init__(self) -> None:
        # Files whose directory listing holds at least one companion name of theirs.
        self._with_companions: set[bytes] = set()
        # Files recognised as SQLite databases (by header) and read live.
        self._databases: set[bytes] = set()

    def listed(self, directory: bytes, names: Sequence[bytes]) -> None:
        """Note the companion names of a listed directory (one ``endswith`` per name)."""
        for name in names:
            if name.endswith(COMPANION_SUFFIXES):
                main = main_file_of(name)
                if main:
                    self._with_companions.add(directory + b"/" + main)

    def has_listed_companions(self, path: bytes) -> bool:
        """Whether the listing that held ``path`` also held one of its companions."""
        return bool(self._with_companions) and path in self._with_companions

    def mark_database(self, path: bytes) -> None:
        """``path`` is a SQLite database: its companions are never read on their own."""
        self._databases.add(path)

    def is_database(self, path: bytes) -> bool:
        """Whether ``path`` was recognised as a database this session."""
        return path in self._databases

    def companion_of_database(self, path: bytes) -> bool:
        """Whether ``path`` is a companion (by name) of a database recognised this session."""
        if not self._databases or not path.endswith(COMPANION_SUFFIXES):
            return False  # the common case, in one C call
        main = main_file_of(path)
        return main is not None and main in self._databases


def present_companions(path: bytes) -> list[bytes]:
    """The companions of database ``path`` that exist now as regular files (three ``lstat``s)."""
    found: list[bytes] = []
    for suffix in COMPANION_SUFFIXES:
        try:
            st = os.lstat(path + suffix)
        except OSError:
            continue
        if (st.st_mode & 0o170000) == 0o100000:
            found.append(path + suffix)
    return found


@dataclass(frozen=True)
class MemberState:
    """What ``lstat`` said about one member of a group (None fields: it did not exist)."""

    path: bytes
    size: int | None
    mtime_ns: int | None
    ctime_ns: int | None
    inode: int | None


def member_states(paths: Sequence[bytes]) -> tuple[MemberState, ...]:
    """The status of every member (and of every companion name) of a group, right now."""
    result: list[MemberState] = []
    for p in paths:
        try:
            st = os.lstat(p)
        except OSError:
            result.append(MemberState(p, None, None, None, None))
            continue
        result.append(MemberState(p, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino))
    return tuple(result)


def group_verdict(
    names: Sequence[bytes],
    outcomes: Sequence[FileOutcome],
    before: Sequence[MemberState],
    after: Sequence[MemberState],
) -> tuple[bool, str]:
    """Whether the raw reads of a group's members fit together, and if not, why.

    They fit when every member was read ``ok`` (unchanged, under a lease or lock) and no
    member (nor any companion name) changed, appeared or vanished between the first read's
    start and the last read's end: then all of them show one moment.
    """
    changed = [os.fsdecode(b.path) for b, a in zip(before, after, strict=True) if b != a]
    if changed:
        return False, "changed between the reads of its files: " + ", ".join(changed)
    bad = [
        f"{os.fsdecode(n)} {o.classification.value} ({o.message})"
        for n, o in zip(names, outcomes, strict=True)
        if o.classification is not Classification.OK
    ]
    if bad:
        return False, "not every file of it was read intact: " + "; ".join(bad)
    return True, ""


def torn_outcome(
    outcome: FileOutcome, why: str, attempts: int, writers: tuple[WriterInfo, ...]
) -> FileOutcome:
    """A member of a group that was not read at one moment: ``suspect`` as a whole (a member that
    could not be read at all stays ``failed``)."""
    if outcome.classification is Classification.FAILED:
        return outcome
    who = describe_writers(writers)
    message = f"part of a SQLite database group that {why}" + (f"; open for writing by {who}" if who else "")
    return FileOutcome(Classification.SUSPECT, Reason.GROUP_CHANGED, message, attempts, writers)
