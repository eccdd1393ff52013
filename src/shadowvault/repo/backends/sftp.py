"""SFTP through the system ``ssh`` (``ssh [-F cfg] [-p port] [-l user] host -s sftp``), as restic does.

The user's ``~/.ssh/config``, agent, ``known_hosts``, ``ProxyJump`` and keys all apply because the
SSH side is OpenSSH itself; paramiko's ``SFTPClient`` speaks the SFTP protocol over the child's
pipes (encryption and the network stay in ``ssh``, in C). Host keys are always verified: ``ssh``
runs with ``StrictHostKeyChecking=yes``, and an unknown or changed host key ends the command
with one line saying what to do (a custom ``SHADOWVAULT_SFTP_COMMAND`` replaces the whole command
line, options included, like restic's ``sftp.command``).

Each connection is one ``ssh`` process; up to ``connections`` of them run at once (paramiko's
client serves one thread at a time), started when first needed. A connection that breaks (server
gone, ``ssh`` killed) is dropped and the failure is a transient ``RemoteError``, so
``RetryBackend`` reconnects. Uploads are written, pipelined, to ``.tmp-NAME-RANDOM`` in the target
directory and renamed into place with SFTP's plain rename, which OpenSSH refuses when the target
exists, so a file is never replaced and a cut-off upload leaves only a hidden temporary name that
restic and ``list`` ignore. A read is an open, its READ requests pipelined (``_read_range``)
and a close whose reply is not waited for; a range read asks for no ``fstat`` (its length is known,
a short answer is the error), so a pack range costs one round trip before its data.
Restic's layout: ``config``, ``keys/``, ``data/xx/``, ...
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import select
import stat as stat_mod
import subprocess
import threading
from collections.abc import Callable, Iterator
from typing import IO, Any, TypeVar

import paramiko
from paramiko.sftp import (
    CMD_ATTRS,
    CMD_CLOSE,
    CMD_DATA,
    CMD_EXTENDED,
    CMD_EXTENDED_REPLY,
    CMD_FSTAT,
    CMD_HANDLE,
    CMD_OPEN,
    CMD_READ,
    CMD_STATUS,
    SFTP_EOF,
    SFTP_FLAG_READ,
    int64,
)
from paramiko.sftp_attr import SFTPAttributes

from shadowvault.repo.backends.base import TYPE_DIRS, Backend, FileType, RemoteError, list_config, object_path
from shadowvault.repo.backends.options import BackendOptions
from shadowvault.repo.backends.sshproc import SshProcess, sftp_argv
from shadowvault.repo.location import SftpLocation

T = TypeVar("T")
_BASE_REQUEST = 32768
"""The request size every SFTP server takes (paramiko's SFTPFile.MAX_REQUEST_SIZE)."""
_MAX_REQUEST = 128 * 1024


class _Pipes:
    """The socket-like object paramiko's SFTP layer reads and writes: the child's stdout/stdin."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdin is not None and proc.stdout is not None
        self._in: IO[bytes] = proc.stdin
        self._out: IO[bytes] = proc.stdout

    def send(self, data: bytes) -> int:
        return os.write(self._in.fileno(), data)

    def recv(self, n: int) -> bytes:
        return os.read(self._out.fileno(), n)

    def recv_ready(self) -> bool:
        # Pipelined writes ask whether replies wait, to collect them without blocking.
        return bool(select.select([self._out], [], [], 0)[0])

    def get_name(self) -> str:
        return "ssh"

    def close(self) -> None:
        for f in (self._in, self._out):
            with contextlib.suppress(OSError):
                f.close()


class _Connection:
    """One ``ssh -s sftp`` child and the SFTP client speaking over its pipes."""

    def __init__(self, ssh: SshProcess) -> None:
        self.ssh = ssh
        self.proc = ssh.proc
        self.client: Any = None
        self.read_size = self.write_size = _BASE_REQUEST

    def open(self) -> None:
        """Negotiate SFTP over the pipes (raises one of ``_BROKEN`` when ssh did not get there)."""
        self.client = paramiko.SFTPClient(_Pipes(self.proc))
        # paramiko sends 32 KiB per request, the size every server must take; OpenSSH says what it
        # takes (limits@openssh.com), and 128 KiB requests moved 2-2.3x more per second here
        # (16 MiB: write 19 -> 43 MiB/s, read 13 -> 30 MiB/s), the per-request work being Python's.
        try:
            t, msg = self.client._request(CMD_EXTENDED, "limits@openssh.com")
            if t == CMD_EXTENDED_REPLY:
                _packet, max_read, max_write = msg.get_int64(), msg.get_int64(), msg.get_int64()
                self.read_size = max(_BASE_REQUEST, min(max_read or _BASE_REQUEST, _MAX_REQUEST))
                self.write_size = max(_BASE_REQUEST, min(max_write or _BASE_REQUEST, _MAX_REQUEST))
        except OSError:
            pass  # not an OpenSSH server (SSH_FX_OP_UNSUPPORTED): keep 32 KiB

    def explain(self) -> str:
        """What ssh said, as one line ("" when it said nothing)."""
        return self.ssh.explain()

    def kill(self) -> None:
        """End the child and wait for it."""
        self.ssh.kill()


_BROKEN = (EOFError, paramiko.SSHException, BrokenPipeError, ConnectionError)


class SftpBackend:
    """A repository in a directory of an SSH server."""

    def __init__(self, loc: SftpLocation, opts: BackendOptions, started: SshProcess | None = None) -> None:
        """``started``: an ``ssh`` already started with ``sftp_argv(loc, opts)``, used as the first
        connection (``open_backend`` starts it before importing this module)."""
        self._loc = loc
        self.connections = opts.connections
        self.remote = True
        self._argv = sftp_argv(loc, opts)
        self._started = started
        self._root = loc.path.rstrip("/") or "/"
        self._idle: list[_Connection] = []
        self._all: set[_Connection] = set()
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(opts.connections)
        self._ever_connected = False

    def location(self) -> str:
        """``sftp:[user@]host:/path``."""
        return self._loc.display()

    # ---- connections -----------------------------------------------------------------------

    def _connect(self) -> _Connection:
        with self._lock:
            started, self._started = self._started, None
        try:
            conn = _Connection(started if started is not None else SshProcess(self._argv))
        except FileNotFoundError:
            raise RemoteError(
                f"cannot start {self._argv[0]!r} for {self.location()}: install the OpenSSH client",
                permanent=True,
            ) from None
        try:
            conn.open()
        except _BROKEN:
            conn.kill()
            raise self._connect_error(conn.explain()) from None
        self._ever_connected = True
        with self._lock:
            self._all.add(conn)
        return conn

    def _connect_error(self, said: str) -> Exception:
        host = self._loc.host
        if "Host key verification failed" in said or "IDENTIFICATION HAS CHANGED" in said:
            return RemoteError(
                f"the SSH host key of {host} is unknown or has changed ({said}): check its fingerprint "
                f"and add it to known_hosts (e.g. connect once with `ssh {host}`), then retry",
                permanent=True,
            )
        if "Permission denied" in said:
            return PermissionError(f"SSH login to {host} refused ({said}): check the user name and keys")
        # A later reconnect (server restarted, network back) is worth retrying; the first is not.
        return RemoteError(
            f"cannot open an SFTP session to {host} ({said or 'ssh exited'}): check the host, port "
            "and that its SSH server offers the sftp subsystem",
            permanent=not self._ever_connected,
        )

    def _with(self, what: str, op: Callable[[_Connection], T]) -> T:
        self._slots.acquire()
        conn: _Connection | None = None
        try:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            if conn is None:
                conn = self._connect()
            try:
                return op(conn)
            except _BROKEN as exc:
                broken, conn = conn, None
                broken.kill()
                with self._lock:
                    self._all.discard(broken)
                why = broken.explain() or f"{type(exc).__name__}: {exc}".rstrip(": ")
                raise RemoteError(f"{what}: the SSH connection to {self._loc.host} broke ({why})") from None
        finally:
            if conn is not None:
                with self._lock:
                    self._idle.append(conn)
            self._slots.release()

    # ---- paths ---------------------------------------------------------------------------------

    def _path(self, ft: FileType, name: str) -> str:
        return f"{self._root}/{object_path(ft, name)}"

    def _mkdirs(self, client: Any, path: str) -> None:
        parts = path.split("/")
        for i in range(1, len(parts) + 1):
            sub = "/".join(parts[:i])
            if not sub:
                continue
            try:
                client.mkdir(sub, 0o700)
            except OSError:
                # Existing directories fail with a generic error in SFTP v3: check it is one.
                if not stat_mod.S_ISDIR(client.stat(sub).st_mode or 0):
                    raise

    # ---- Backend -------------------------------------------------------------------------------

    def create(self) -> None:
        """The repository directory, its type directories and data/00..ff."""

        def op(conn: _Connection) -> None:
            client = conn.client
            self._mkdirs(client, self._root)
            have = {a.filename for a in client.listdir_attr(self._root)}
            for d in TYPE_DIRS.values():
                if d not in have:
                    client.mkdir(f"{self._root}/{d}", 0o700)
            data = f"{self._root}/data"
            have = {a.filename for a in client.listdir_attr(data)}
            for i in range(256):
                if f"{i:02x}" not in have:
                    client.mkdir(f"{data}/{i:02x}", 0o700)

        self._with(f"create the repository at {self.location()}", op)

    def save(self, ft: FileType, name: str, data: bytes | bytearray | memoryview) -> None:
        """Pipelined write to a hidden temporary name, then a rename that never replaces."""
        final = self._path(ft, name)
        directory = final.rsplit("/", 1)[0]
        tmp = f"{directory}/.tmp-{final.rsplit('/', 1)[1]}-{secrets.token_hex(6)}"
        body = bytes(data)

        def op(conn: _Connection) -> None:
            client = conn.client
            try:
                client.stat(final)
            except FileNotFoundError:
                pass
            else:
                raise FileExistsError(f"{ft.value} {name} already exists")
            try:
                f = client.open(tmp, "wb")
            except FileNotFoundError:
                self._mkdirs(client, directory)  # a layout made by a client that skips data/xx
                f = client.open(tmp, "wb")
            try:
                with f:
                    f.MAX_REQUEST_SIZE = conn.write_size
                    f.set_pipelined(True)
                    f.write(body)
                client.rename(tmp, final)
            except _BROKEN:
                raise
            except BaseException:
                with contextlib.suppress(OSError):
                    client.remove(tmp)
                if isinstance(_exists(client, final), int):
                    raise FileExistsError(f"{ft.value} {name} already exists") from None
                raise

        self._with(f"save {ft.value} {name}", op)

    def load(self, ft: FileType, name: str, offset: int = 0, length: int | None = None) -> bytes:
        """The file or ``length`` bytes from ``offset``, read with pipelined requests."""
        if offset < 0 or (length is not None and length < 0):
            raise ValueError("negative offset or length")
        path = self._path(ft, name)

        def op(conn: _Connection) -> bytes | int:
            client = conn.client
            t, msg = client._request(CMD_OPEN, path, SFTP_FLAG_READ, SFTPAttributes())
            if t != CMD_HANDLE:
                raise paramiko.SFTPError("expected a handle")
            handle = msg.get_binary()
            try:
                if length is None:
                    # A whole file: its size first (a range read needs no such round trip, its
                    # length is known and a short answer is the error).
                    t, msg = client._request(CMD_FSTAT, handle)
                    if t != CMD_ATTRS:
                        raise paramiko.SFTPError("expected attributes")
                    size = int(SFTPAttributes._from_msg(msg).st_size or 0)
                    if offset > size:
                        return size
                    return _read_range(client, handle, offset, size - offset, conn.read_size)
                return _read_range(client, handle, offset, length, conn.read_size)
            finally:
                # Not waited for: the reply is taken (and dropped) by the connection's next request,
                # which saves a round trip per read; a close the server refuses changes nothing.
                client._async_request(type(None), CMD_CLOSE, handle)

        data = self._with(f"load {ft.value} {name}", op)
        if isinstance(data, int):
            raise EOFError(f"{path}: wanted {length} bytes at {offset}, file has {data}")
        if length is not None and len(data) != length:
            raise EOFError(f"{path}: wanted {length} bytes at {offset}, got {len(data)}")
        return data

    def stat(self, ft: FileType, name: str) -> int:
        """Size in bytes."""
        path = self._path(ft, name)
        return int(self._with(f"stat {ft.value} {name}", lambda c: c.client.stat(path).st_size))

    def list(self, ft: FileType) -> Iterator[tuple[str, int]]:
        """Regular files of the type (data/xx/ walked), temporary names skipped."""
        if ft is FileType.CONFIG:
            yield from list_config(self)
            return
        top = f"{self._root}/{TYPE_DIRS[ft]}"

        def files(client: Any, d: str) -> list[tuple[str, int]]:
            try:
                entries = client.listdir_attr(d)
            except FileNotFoundError:
                return []
            return [
                (a.filename, int(a.st_size or 0))
                for a in entries
                if not a.filename.startswith(".") and stat_mod.S_ISREG(a.st_mode or 0)
            ]

        def op(conn: _Connection) -> list[tuple[str, int]]:
            client = conn.client
            if ft is not FileType.PACK:
                return files(client, top)
            try:
                subs = sorted(
                    a.filename for a in client.listdir_attr(top) if stat_mod.S_ISDIR(a.st_mode or 0)
                )
            except FileNotFoundError:
                return []
            found: list[tuple[str, int]] = []
            for sub in subs:
                found += files(client, f"{top}/{sub}")
            return found

        yield from self._with(f"list {ft.value}", op)

    def remove(self, ft: FileType, name: str) -> None:
        """Delete one file."""
        path = self._path(ft, name)
        self._with(f"remove {ft.value} {name}", lambda c: c.client.remove(path))

    def is_permanent_error(self, exc: BaseException) -> bool:
        """Missing/existing files, permissions, bad names and host-key problems are permanent."""
        if isinstance(exc, RemoteError):
            return exc.permanent
        if isinstance(exc, OSError) and exc.errno in (errno.ENOENT, errno.EACCES, errno.EEXIST):
            return True
        return isinstance(exc, (FileNotFoundError, FileExistsError, PermissionError, ValueError, EOFError))

    def close(self) -> None:
        """End every ssh child."""
        with self._lock:
            conns, self._all, self._idle = list(self._all), set(), []
            started, self._started = self._started, None
        if started is not None:
            started.kill()
        for conn in conns:
            try:
                conn.client.close()
            except (OSError, *_BROKEN):
                pass
            conn.kill()


_IN_FLIGHT = 64
"""Read requests outstanding at once on one connection (8 MiB at 128 KiB): enough to keep the pipe
full, few enough that the replies the server has to hold stay bounded."""


class _Replies:
    """Collects the replies to pipelined read requests (paramiko hands a reply to the object the
    request was registered with, whichever call reads it off the connection)."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.data: dict[int, bytes] = {}
        self.error: BaseException | None = None

    def _async_response(self, t: int, msg: Any, num: int) -> None:
        self.data[num] = b""
        if t == CMD_DATA:
            self.data[num] = msg.get_string()
        elif t != CMD_STATUS:
            self.error = paramiko.SFTPError(f"expected data, got SFTP message type {t}")
        elif msg.get_int() != SFTP_EOF:  # EOF: nothing at or after the end of the file
            msg.rewind()
            msg.get_int()  # the request number, read by paramiko before handing the reply over
            try:
                self._client._convert_status(msg)  # raises the OSError paramiko makes of it
            except OSError as exc:
                self.error = exc


def _read_range(client: Any, handle: bytes, offset: int, length: int, step: int) -> bytes:
    """``length`` bytes from ``offset`` of an open file, at most ``_IN_FLIGHT`` requests of ``step``
    bytes outstanding; shorter only where the file ends. No thread, no per-piece buffers beyond the
    replies themselves (paramiko's ``readv`` starts a thread per call and re-slices every reply)."""
    if length == 0:
        return b""
    replies = _Replies(client)
    wanted: list[tuple[int, int, int]] = []  # (request number, offset, size), in file order
    end = offset + length
    pos = offset
    while pos < end or len(replies.data) < len(wanted):
        if pos < end and len(wanted) - len(replies.data) < _IN_FLIGHT:
            size = min(step, end - pos)
            num = client._async_request(replies, CMD_READ, handle, int64(pos), int(size))
            wanted.append((num, pos, size))
            pos += size
        else:
            client._read_response()
    if replies.error is not None:
        raise replies.error
    pieces = []
    for num, at, size in wanted:
        piece = replies.data[num]
        if 0 < len(piece) < size:
            # A server may answer a read with less than asked before the end: ask for the rest.
            piece += _read_range(client, handle, at + len(piece), size - len(piece), step)
        pieces.append(piece)
        if len(piece) < size:
            break  # the end of the file
    return b"".join(pieces)


def _exists(client: Any, path: str) -> int | None:
    try:
        return int(client.stat(path).st_size)
    except OSError:
        return None


_: type[Backend] = SftpBackend
