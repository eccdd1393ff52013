"""Storage backends: where repository files live, as opaque bytes.

``Backend`` is the protocol (save-atomic, load a range, stat, list, remove);
``LocalBackend`` is a directory in restic's default layout and ``MemBackend`` a
dictionary for tests. ``RetryBackend`` wraps any backend with retries and
backoff for transient errors. ``testsuite.CHECKS`` is the conformance suite
every backend must pass. ``FileType`` names the kinds of file. Backends never see
plaintext: encryption happens in the repository above them.
"""

from shadowvault.repo.backends.base import Backend, FileType, exists
from shadowvault.repo.backends.local import LocalBackend
from shadowvault.repo.backends.mem import MemBackend
from shadowvault.repo.backends.retry import RetryBackend

__all__ = ["Backend", "FileType", "LocalBackend", "MemBackend", "RetryBackend", "exists"]
