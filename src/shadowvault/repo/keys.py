"""Key management (``key list|add|passwd|remove``): several passwords open one master key.

Each key file holds the master key encrypted with a key derived from one password. Adding a key
writes a new file (the backend writes atomically); changing a password adds the new key before
the old one is removed, so the repository is never without a key that opens it. The key that
opened this session and the last remaining key are never removed.
"""

from __future__ import annotations

import getpass
import socket

from shadowvault.errors import RepoError, UsageError
from shadowvault.repo import crypto
from shadowvault.repo.backends.base import FileType
from shadowvault.repo.files import key
from shadowvault.repo.ids import hash_bytes, is_hex_id
from shadowvault.repo.repository import Repository


def list_keys(repo: Repository) -> list[tuple[str, key.KeyFile]]:
    """(id, key file) of every readable key file, by id."""
    result = []
    for name, _ in sorted(repo.backend.list(FileType.KEY)):
        if not is_hex_id(name):
            continue
        try:
            result.append((name, key.KeyFile.from_json(repo.backend.load(FileType.KEY, name))))
        except (OSError, ValueError):
            continue
    return result


def key_for_password(repo: Repository, password: str) -> str | None:
    """Which key file ``password`` opens (the session's own key), or None."""
    for name, kf in list_keys(repo):
        try:
            key.open_master(kf, password)
        except (crypto.CiphertextError, ValueError):
            continue
        return name
    return None


def add_key(repo: Repository, password: str, *, params: crypto.KdfParams | None = None) -> str:
    """Write a key file opening the repository's master key with ``password``; returns its id."""
    if not password:
        raise UsageError("an empty password is not allowed")
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = ""
    kf = key.create(
        repo.key, password, params or crypto.KdfParams(), username=user, hostname=socket.gethostname()
    )
    raw = kf.to_json()
    name = hash_bytes(raw).hex()
    repo.backend.save(FileType.KEY, name, raw)
    return name


def remove_key(repo: Repository, ref: str, *, current: str | None) -> str:
    """Remove the key file ``ref`` (id or unique prefix); never the current or the last one."""
    name = repo.resolve(FileType.KEY, ref)
    if name == current:
        raise UsageError(f"key {name[:8]} opened this session: use `key passwd` to replace it")
    if len(list_keys(repo)) <= 1:
        raise RepoError("that is the repository's only key: add another before removing it")
    repo.remove_file(FileType.KEY, name)
    return name
