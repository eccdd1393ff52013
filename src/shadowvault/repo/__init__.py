"""Restic repository format, version 2 (and reading version 1).

Glossary (after restic's ``doc/design.rst``):

- **File**: everything stored in a repository is a file named by the SHA-256 of
  its bytes (except ``config``), encrypted ``IV || CIPHERTEXT || MAC`` with
  AES-256-CTR and Poly1305-AES, except key files which are plain JSON.
- **Blob**: a piece of plaintext identified by its SHA-256 — a chunk of a file
  (``BlobType.DATA``) or a directory listing (``BlobType.TREE``). Blobs are
  encrypted one by one, zstd-compressed first in version 2.
- **Pack**: a file of blobs of one type followed by an encrypted header that
  lists them; target size 16 MiB.
- **Index**: files mapping blob → (pack, offset, length); merged in memory into
  the master index.
- **Tree**: JSON list of ``Node`` entries (name, type, metadata, content blob
  ids or subtree id), sorted by name.
- **Snapshot**: a file naming the root tree plus time, host, user and paths.
- **Key** / **Config** / **Lock**: password-derived access to the master key;
  repository version and id; who is using the repository.

``Repository`` is the facade the engine uses; ``check_repository`` verifies a
repository the way ``restic check`` does; ``apply_policy``/``forget``/``prune``
are the retention and garbage-collection mechanics. Nothing here knows about open files,
file-system walks or sessions.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

from shadowvault.repo.backends import Backend, FileType, LocalBackend, MemBackend
from shadowvault.repo.files.snapshot import Snapshot
from shadowvault.repo.files.tree import Node, Tree
from shadowvault.repo.ids import BlobType, hash_bytes
from shadowvault.repo.packer import DEFAULT_PACK_SIZE
from shadowvault.repo.policy import Duration, GroupDecision, GroupKey, KeepPolicy, Rules, apply_policy
from shadowvault.repo.repository import Repository

if TYPE_CHECKING:
    from shadowvault.repo.check import CheckProblem, check_repository
    from shadowvault.repo.maintenance import PruneStats, forget, prune
    from shadowvault.repo.tempfiles import TempFile, find_temp_files, remove_stale_temp_files

__all__ = [
    "DEFAULT_PACK_SIZE",
    "Backend",
    "BlobType",
    "CheckProblem",
    "Duration",
    "FileType",
    "GroupDecision",
    "GroupKey",
    "KeepPolicy",
    "LocalBackend",
    "MemBackend",
    "Node",
    "PruneStats",
    "Repository",
    "Rules",
    "Snapshot",
    "TempFile",
    "Tree",
    "apply_policy",
    "check_repository",
    "find_temp_files",
    "forget",
    "hash_bytes",
    "prune",
    "remove_stale_temp_files",
]

_LAZY = {
    "CheckProblem": "check",
    "check_repository": "check",
    "PruneStats": "maintenance",
    "forget": "maintenance",
    "prune": "maintenance",
    "TempFile": "tempfiles",
    "find_temp_files": "tempfiles",
    "remove_stale_temp_files": "tempfiles",
}


def __getattr__(name: str) -> Any:
    """check, prune and the temp-file sweep, imported on first use: a backup, a restore or a
    listing does not load them (``repo.check`` alone was ~0.05 s of every command's start-up)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
