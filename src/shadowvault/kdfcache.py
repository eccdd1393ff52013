"""Start the key derivation while the program is still importing itself.

Opening a repository begins with scrypt (~0.3 s, like restic), and a Python program spends about as
long importing its modules before it gets there. hashlib's scrypt releases the GIL, so when the
command line already names the repository (``--repo`` or ``$SHADOWVAULT_REPOSITORY``) and the password
is in ``$SHADOWVAULT_PASSWORD``, the CLI starts deriving the user key of each key file in a daemon
thread before its heavy imports; ``repo.crypto.kdf`` then takes the result instead of computing it.

A remote repository (``sftp:``, ``s3:``, ``rest:``) cannot be listed that early (the connection and
its client library come later), so after a remote repository opened, the CLI keeps the scrypt salt
and parameters of the key file that opened it (``remember``; not the encrypted master key) under the
user's cache directory, keyed by a hash of the location; the next command starts deriving from them
while it imports and connects. A stale hint (key changed, other password) is simply not used.

This module uses the standard library only (it runs before the rest is imported). A guess that does
not match what the repository layer asks for later (another repository, another password, a key file
it cannot read) is simply not used; nothing else depends on it.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import re
import threading
from collections.abc import Mapping, Sequence

REPO_COMMANDS = frozenset(
    {"backup", "restore", "snapshots", "ls", "check", "cat", "report"}
    | {"diff", "find", "stats", "dump", "tag", "unlock", "key"}
)
_VALUE_OPTIONS = frozenset(
    {"-r", "--repo", "--password-file", "--password-command", "--config"}
    | {"--limit-upload", "--limit-download"}  # cli.parser's global options that take a value
)
_MAX_KEYS = 4
HASHLIB_LIMIT = 2**31 - 1
"""hashlib.scrypt refuses a memory limit this large or larger."""

Params = tuple[bytes, bytes, int, int, int]  # password, salt, N, r, p


class _Job:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: bytes | None = None

    def run(self, params: Params, maxmem: int) -> None:
        password, salt, n, r, p = params
        try:
            self.result = hashlib.scrypt(password, salt=salt, n=n, r=r, p=p, maxmem=maxmem, dklen=64)
        except (ValueError, MemoryError):
            self.result = None  # the repository layer derives it itself and reports any problem
        finally:
            self.done.set()


_lock = threading.Lock()
_jobs: dict[Params, _Job] = {}


def maxmem_for(n: int, r: int, p: int) -> int:
    """A memory limit scrypt(N, r, p) fits in: 128·r·(N + p) bytes plus room to spare."""
    return 128 * r * (n + p) + (64 << 20)


def prefetch(repo_dir: str, password: str) -> int:
    """Start deriving the user key of each key file of ``repo_dir``; returns how many started."""
    keys = os.path.join(repo_dir, "keys")
    try:
        names = sorted(os.listdir(keys))[:_MAX_KEYS]
    except OSError:
        return 0
    started = 0
    for name in names:
        try:
            with open(os.path.join(keys, name), "rb") as f:
                doc = json.load(f)
            if doc.get("kdf") != "scrypt":
                continue
            params: Params = (
                password.encode(),
                base64.b64decode(doc["salt"]),
                int(doc["N"]),
                int(doc["r"]),
                int(doc["p"]),
            )
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue
        maxmem = maxmem_for(*params[2:])
        if maxmem >= HASHLIB_LIMIT:
            continue
        job = _Job()
        with _lock:
            if params in _jobs:
                continue
            _jobs[params] = job
        threading.Thread(target=job.run, args=(params, maxmem), name="kdf", daemon=True).start()
        started += 1
    return started


_REMOTE = re.compile(r"(?i)^(sftp|s3|rest):")
_URL_PASSWORD = re.compile(r"(://[^/@:]*:)[^/@]*@")
_HINT = "hint.json"


def cache_dir(env: Mapping[str, str] = os.environ) -> str:
    """shadowvault's directory under the user's cache directory (platformdirs' choice on Linux:
    ``$XDG_CACHE_HOME/shadowvault``, else ``~/.cache/shadowvault``)."""
    base = env.get("XDG_CACHE_HOME", "").strip()
    if not os.path.isabs(base):
        base = os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "shadowvault")


def is_remote_location(location: str) -> bool:
    """True for the ``sftp:``, ``s3:`` and ``rest:`` locations."""
    return _REMOTE.match(location) is not None


def hint_dir(location: str, env: Mapping[str, str] = os.environ) -> str:
    """Where the key derivation hint of a remote location lives (a password in a REST URL is not
    part of the name)."""
    digest = hashlib.sha256(_URL_PASSWORD.sub(r"\1@", location).encode()).hexdigest()[:32]
    return os.path.join(cache_dir(env), "kdf", digest)


def remember(location: str, key_json: bytes, env: Mapping[str, str] = os.environ) -> None:
    """Keep the scrypt salt and parameters of the key file that opened the remote repository at
    ``location`` for ``prefetch``. A cache: any failure is ignored, the next run derives as usual."""
    try:
        doc = json.loads(key_json)
        hint = {k: doc[k] for k in ("kdf", "N", "r", "p", "salt")}
        body = json.dumps(hint, sort_keys=True).encode()
        keys = os.path.join(hint_dir(location, env), "keys")
        path = os.path.join(keys, _HINT)
        try:
            with open(path, "rb") as f:
                if f.read() == body:
                    return
        except OSError:
            pass
        os.makedirs(keys, mode=0o700, exist_ok=True)
        tmp = f"{path}.tmp-{os.urandom(4).hex()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(body)
            os.replace(tmp, path)  # readers see the old hint or the new one, never half of one
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except (OSError, ValueError, KeyError, TypeError):
        return


def prefetch_for_command(argv: Sequence[str], env: Mapping[str, str]) -> int:
    """``prefetch`` when ``argv`` runs a repository command whose repository and password are known
    without reading any configuration; 0 otherwise."""
    command = None
    for i, arg in enumerate(argv):
        # The command is the first word that is not an option or a global option's value.
        if not arg.startswith("-") and (i == 0 or argv[i - 1] not in _VALUE_OPTIONS):
            command = arg
            break
    password = env.get("SHADOWVAULT_PASSWORD")
    if command not in REPO_COMMANDS or not password:
        return 0
    repo = env.get("SHADOWVAULT_REPOSITORY")
    for i, arg in enumerate(argv):
        if arg in ("-r", "--repo") and i + 1 < len(argv):
            repo = argv[i + 1]
        elif arg.startswith("--repo="):
            repo = arg.partition("=")[2]
    if not repo:
        return 0
    if is_remote_location(repo):
        return prefetch(hint_dir(repo, env), password)
    return prefetch(os.path.expanduser(repo), password)


def take(password: bytes, salt: bytes, n: int, r: int, p: int) -> bytes | None:
    """The 64 bytes derived early for exactly these inputs (waiting for them), or None."""
    with _lock:
        job = _jobs.pop((password, salt, n, r, p), None)
    if job is None:
        return None
    job.done.wait()
    return job.result
