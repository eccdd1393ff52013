"""Injected faults: 500/503 answers, connections dropped mid-read and mid-upload, slow answers, a
server killed mid-upload and a client killed mid-upload. No partial object may ever become
visible, every interrupted backup leaves a repository restic check accepts, the next one works."""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from faultproxy import Fault, FaultProxy
from remote_helpers import child_env, make_source, require_binary, run_restic, run_sv, same_tree
from test_remote_s3 import s3_location
from test_remote_sftp import _backend as sftp_backend
from test_remote_sftp import restic_env as sftp_env_for
from test_remote_sftp import restic_sftp, sftp_location

from shadowvault.repo.backends import FileType
from shadowvault.repo.backends.open import open_backend
from shadowvault.repo.backends.options import BackendOptions
from shadowvault.repo.location import parse_location


def _auth(env: dict[str, str]) -> dict[str, str]:
    return {
        "SHADOWVAULT_REST_USERNAME": env["SHADOWVAULT_TEST_REST_USER"],
        "SHADOWVAULT_REST_PASSWORD": env["SHADOWVAULT_TEST_REST_PASS"],
    }


def _restic_url(env: dict[str, str], base: str, repo: str) -> str:
    cred = f"{env['SHADOWVAULT_TEST_REST_USER']}:{env['SHADOWVAULT_TEST_REST_PASS']}@"
    return "rest:" + base.replace("://", f"://{cred}") + repo + "/"


@pytest.fixture
def proxy(rest_env: dict[str, str]) -> Iterator[FaultProxy]:
    p = FaultProxy(rest_env["SHADOWVAULT_TEST_REST_URL"])
    yield p
    p.close()


def _no_partial_files(root: Path) -> None:
    """Every file under data/ (temporary names aside) is whole: its SHA-256 is its name."""
    for f in (root / "data").rglob("*"):
        if f.is_file() and not f.name.startswith("."):
            assert hashlib.sha256(f.read_bytes()).hexdigest() == f.name, f"partial or bad pack {f}"


def _rest_root(rest_env: dict[str, str], repo: str) -> Path | None:
    # When the test started the server itself we know its directory; under .ci/run we do not.
    d = rest_env.get("SHADOWVAULT_TEST_REST_DIR")
    return Path(d) / repo if d else None


def test_rest_500_503_slow_and_dropped_connections(
    rest_env: dict[str, str], proxy: FaultProxy, tmp_path: Path
) -> None:
    require_binary("restic")
    repo = f"faults{os.getpid()}{time.monotonic_ns() % 10**6}"
    env = child_env(rest_env, f"rest:{proxy.url}{repo}/", **_auth(rest_env))
    run_sv(env, "init")
    src = make_source(tmp_path)
    proxy.add(Fault("status", "POST", "/data/", status=503, times=2))
    proxy.add(Fault("status", "HEAD", "/data/", status=500))
    proxy.add(Fault("drop_request", "POST", "/data/"))
    proxy.add(Fault("delay", "POST", "/index/", seconds=1.0))
    p = run_sv(env, "backup", str(src))
    assert proxy.pending() == 0, proxy.fired
    assert p.stderr.count("retrying in") >= 4, p.stderr
    assert rest_env["SHADOWVAULT_TEST_REST_PASS"] not in p.stderr
    restic_env = dict(
        env, RESTIC_REPOSITORY=_restic_url(rest_env, rest_env["SHADOWVAULT_TEST_REST_URL"], repo)
    )
    run_restic(restic_env, "check", "--read-data")
    root = _rest_root(rest_env, repo)
    if root is not None:
        _no_partial_files(root)
    # Reads: a connection dropped mid-body twice, and one 503, during the restore.
    proxy.add(Fault("drop_response", "GET", "/data/", times=2))
    proxy.add(Fault("status", "GET", "/data/", status=503))
    p = run_sv(env, "restore", "latest", "--target", str(tmp_path / "out"))
    assert proxy.pending() == 0, proxy.fired
    same_tree(src, tmp_path / "out" / str(src).lstrip("/"))


def test_rest_backend_gives_up_on_permanent_errors_at_once(
    rest_env: dict[str, str], proxy: FaultProxy
) -> None:
    reports: list[str] = []
    opts = BackendOptions.from_env(_auth(rest_env), retry_report=lambda what, exc, d: reports.append(what))
    be = open_backend(parse_location(f"rest:{proxy.url}perm{os.getpid()}/"), opts)
    be.create()
    proxy.add(Fault("status", "GET", "/keys/", status=400))
    with pytest.raises(OSError):
        be.load(FileType.KEY, "ab" * 32)
    assert reports == []
    proxy.add(Fault("status", "GET", "/keys/", status=503, times=2))
    with pytest.raises(FileNotFoundError):
        be.load(FileType.KEY, "ab" * 32)
    assert len(reports) == 2
    assert be.retries == 2  # type: ignore[attr-defined]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rclone(root: Path, port: int, password: str) -> subprocess.Popen[bytes]:
    env = dict(os.environ, RCLONE_CONFIG="/dev/null", RCLONE_USER="sv", RCLONE_PASS=password)
    p = subprocess.Popen(
        ["rclone", "serve", "restic", str(root), "--addr", f"127.0.0.1:{port}"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return p
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("rclone serve restic did not start")


def _first_pack(root: Path, timeout: float = 120) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if any(f.is_file() for f in (root / "data").rglob("*")):
            return
        time.sleep(0.05)
    raise AssertionError("no pack was uploaded")


def _big_source(tmp_path: Path) -> Path:
    src = tmp_path / "big"
    src.mkdir()
    # 120 MiB: enough that the backup is still uploading when the test sees its first pack (with
    # 48 MiB a quick run had finished by then once).
    for i in range(10):
        (src / f"r{i}.bin").write_bytes(os.urandom(12 * 1024 * 1024))
    return src


def test_rest_server_killed_mid_upload_and_restarted(rest_env: dict[str, str], tmp_path: Path) -> None:
    require_binary("restic")
    require_binary("rclone")
    store, port, pw = tmp_path / "store", _free_port(), "pw-" + os.urandom(4).hex()
    store.mkdir()
    server = _rclone(store, port, pw)
    url = f"rest:http://sv:{pw}@127.0.0.1:{port}/repo/"
    env = child_env(rest_env, url)
    try:
        run_sv(env, "init")
        src = _big_source(tmp_path)
        backup = subprocess.Popen(
            [sys.executable, "-m", "shadowvault", "backup", str(src)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        _first_pack(store / "repo")
        server.kill()
        server.wait()
        time.sleep(1.0)
        server = _rclone(store, port, pw)
        out, err = backup.communicate(timeout=300)
        assert backup.returncode == 0, out + err
        assert "retrying in" in err
        assert pw not in out + err
        _no_partial_files(store / "repo")
        run_restic(env, "check", "--read-data")
        run_sv(env, "restore", "latest", "--target", str(tmp_path / "out"))
        same_tree(src, tmp_path / "out" / str(src).lstrip("/"))
    finally:
        server.kill()
        server.wait()


def _kill_client_mid_upload(env: dict[str, str], src: Path, has_pack: Callable[[], bool]) -> None:
    backup = subprocess.Popen(
        [sys.executable, "-m", "shadowvault", "backup", str(src)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    end = time.monotonic() + 120
    while not has_pack():
        assert time.monotonic() < end and backup.poll() is None, "no pack appeared while the backup ran"
        time.sleep(0.05)
    time.sleep(0.1)  # the next packs are on their way
    assert backup.poll() is None, "the backup ended before it could be interrupted"
    backup.send_signal(signal.SIGKILL)
    backup.wait()


def test_s3_client_killed_mid_upload(s3_env: dict[str, str], tmp_path: Path) -> None:
    require_binary("restic")
    loc = s3_location(s3_env)
    env = child_env(s3_env, loc)
    run_sv(env, "init")
    src = _big_source(tmp_path)
    saved = dict(os.environ)
    os.environ.update({k: s3_env[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")})
    try:
        be = open_backend(parse_location(loc))
    finally:
        os.environ.clear()
        os.environ.update(saved)
    _kill_client_mid_upload(env, src, lambda: any(True for _ in be.list(FileType.PACK)))
    # Every object is whole (multipart uploads in flight stay invisible).
    for name, _size in be.list(FileType.PACK):
        assert hashlib.sha256(be.load(FileType.PACK, name)).hexdigest() == name
    be.close()
    run_restic(env, "unlock")  # the killed client's lock (its process is gone) is stale
    run_restic(env, "check", "--read-data")
    run_sv(env, "backup", str(src))
    run_restic(env, "check", "--read-data")
    run_sv(env, "restore", "latest", "--target", str(tmp_path / "out"))
    same_tree(src, tmp_path / "out" / str(src).lstrip("/"))


def test_sftp_client_killed_mid_upload_and_connection_dropped(
    sshd_env: dict[str, str], tmp_path: Path
) -> None:
    require_binary("restic")
    loc = sftp_location(sshd_env)
    env = sftp_env_for(sshd_env, loc)
    run_sv(env, "init")
    src = _big_source(tmp_path)
    root = Path(loc.split(":", 2)[2])
    _kill_client_mid_upload(env, src, lambda: any(f.is_file() for f in (root / "data").rglob("[0-9a-f]*")))
    _no_partial_files(root)
    run_restic(env, *restic_sftp(sshd_env), "unlock")  # the killed client's lock is stale
    run_restic(env, *restic_sftp(sshd_env), "check", "--read-data")
    run_sv(env, "backup", str(src))
    run_restic(env, *restic_sftp(sshd_env), "check", "--read-data")
    # A connection dropped under a read: the ssh child dies, the retry reconnects.
    be = sftp_backend(sshd_env, loc)
    name, size = next(iter(be.list(FileType.PACK)))
    inner = be.inner  # type: ignore[attr-defined]
    for conn in list(inner._all):
        conn.proc.kill()
    assert len(be.load(FileType.PACK, name, 0, size)) == size
    assert be.retries >= 1  # type: ignore[attr-defined]
    be.close()
