"""Session counts per outcome class and the one function that maps them to an exit code."""

from __future__ import annotations

from dataclasses import dataclass

EXIT_OK = 0
EXIT_FATAL = 1
EXIT_USAGE = 2
EXIT_SOME_FAILED = 3
EXIT_SOME_SUSPECT = 4


@dataclass
class Counts:
    """Running totals of a backup session."""

    ok: int = 0
    suspect: int = 0
    failed: int = 0
    unchanged: int = 0
    files_read: int = 0
    bytes_read: int = 0
    data_blobs_added: int = 0
    bytes_added: int = 0

    def add_class(self, classification: str) -> None:
        """Count one file's final class ("ok", "suspect" or "failed")."""
        if classification == "ok":
            self.ok += 1
        elif classification == "suspect":
            self.suspect += 1
        else:
            self.failed += 1


def exit_code(counts: Counts, snapshot_written: bool) -> int:
    """DESIGN's exit codes: 0 all ok; 1 no snapshot; 3 some failed; 4 none failed, some suspect."""
    if not snapshot_written:
        return EXIT_FATAL
    if counts.failed:
        return EXIT_SOME_FAILED
    if counts.suspect:
        return EXIT_SOME_SUSPECT
    return EXIT_OK
