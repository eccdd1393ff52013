#!/usr/bin/env python3
"""Raw transfer rates of the remote transports on loopback: the measurement behind two choices.

SFTP: shadowvault's backend (paramiko's SFTP protocol over the system ``ssh -s sftp``, 1 and 4
connections) against asyncssh (a whole SSH implementation in Python) and against OpenSSH alone
(``ssh host 'cat > file'``, the ceiling of any SFTP client using it). S3: botocore (boto3's core)
against obstore.
Each writes and reads back N 16 MiB objects. Servers come from .ci/services (started here, into a
temporary directory, unless their variables are set). asyncssh and obstore are not dependencies:
their lines are skipped when they are not installed.

Usage: ``python3 bench/remote_transport.py [--packs N]``
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures as cf
import contextlib
import hashlib
import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from shadowvault.repo.backends import FileType  # noqa: E402
from shadowvault.repo.backends.open import open_backend  # noqa: E402
from shadowvault.repo.backends.options import BackendOptions  # noqa: E402
from shadowvault.repo.location import parse_location  # noqa: E402

MIB = 1024 * 1024


@contextlib.contextmanager
def service(name: str, marker: str) -> Iterator[dict[str, str]]:
    """The variables of a .ci/services server (started here when not running already)."""
    if os.environ.get(marker):
        yield dict(os.environ)
        return
    script = ROOT / ".ci" / "services" / f"{name}.sh"
    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as d:
        out = subprocess.run(
            ["bash", str(script), "start", d], capture_output=True, text=True, check=True
        ).stdout
        found = {}
        for line in out.splitlines():
            if line.startswith("export "):
                k, _, v = line[7:].partition("=")
                found[k] = shlex.split(v)[0]
        try:
            yield dict(os.environ, **found)
        finally:
            subprocess.run(["bash", str(script), "stop", d], capture_output=True)


def rate(n_bytes: int, seconds: float) -> str:
    return f"{n_bytes / MIB / seconds:6.1f} MiB/s"


def _ours(env: dict[str, str], conns: int, names: list[str], packs: list[bytes]) -> tuple[float, float]:
    root, cfg = env["SHADOWVAULT_TEST_SSH_ROOT"], env["SHADOWVAULT_TEST_SSH_CONFIG"]
    loc = parse_location(f"sftp:{env['SHADOWVAULT_TEST_SSH_HOST']}:{root}/ours{conns}")
    be = open_backend(loc, BackendOptions(ssh_config=cfg, connections=conns))
    be.create()
    t = time.perf_counter()
    with cf.ThreadPoolExecutor(conns) as ex:
        list(ex.map(lambda i: be.save(FileType.PACK, names[i], packs[i]), range(len(packs))))
    put = time.perf_counter() - t
    t = time.perf_counter()
    with cf.ThreadPoolExecutor(conns) as ex:
        list(ex.map(lambda i: be.load(FileType.PACK, names[i]), range(len(packs))))
    get = time.perf_counter() - t
    be.close()
    return put, get


def sftp_lines(env: dict[str, str], packs: list[bytes]) -> None:
    root, cfg = env["SHADOWVAULT_TEST_SSH_ROOT"], env["SHADOWVAULT_TEST_SSH_CONFIG"]
    names = [hashlib.sha256(p).hexdigest() for p in packs]
    total = sum(map(len, packs))
    for conns in (1, 4):
        put, get = _ours(env, conns, names, packs)
        print(
            f"sftp  shadowvault (paramiko over ssh), {conns} conn: "
            f"put {rate(total, put)}  get {rate(total, get)}"
        )
    try:
        import asyncssh
    except ImportError:
        print("sftp  asyncssh: not installed, skipped")
    else:

        async def run() -> tuple[float, float]:
            key = str(Path(cfg).parent / "id_ed25519")
            port = int(env["SHADOWVAULT_TEST_SSH_PORT"])
            async with (
                asyncssh.connect(
                    "127.0.0.1", port=port, username="root", client_keys=[key], known_hosts=None
                ) as c,
                c.start_sftp_client() as s,
            ):
                await s.makedirs(f"{root}/async", exist_ok=True)
                t = time.perf_counter()
                for n, p in zip(names, packs, strict=True):
                    async with s.open(f"{root}/async/{n}", "wb") as f:
                        await f.write(p)
                put = time.perf_counter() - t
                t = time.perf_counter()
                for n in names:
                    async with s.open(f"{root}/async/{n}", "rb") as f:
                        await f.read()
                return put, time.perf_counter() - t

        put, get = asyncio.run(run())
        print(
            f"sftp  asyncssh (SSH in Python), 1 conn:        put {rate(total, put)}  get {rate(total, get)}"
        )
    t = time.perf_counter()
    subprocess.run(
        ["ssh", "-F", cfg, env["SHADOWVAULT_TEST_SSH_HOST"], f"cat > {root}/ssh-cat"],
        input=b"".join(packs),
        check=True,
    )
    print(f"sftp  OpenSSH alone (ssh host 'cat > f'):      put {rate(total, time.perf_counter() - t)}")


def s3_lines(env: dict[str, str], packs: list[bytes]) -> None:
    import botocore.config
    import botocore.session

    ep = env["SHADOWVAULT_TEST_S3_ENDPOINT"]
    total = sum(map(len, packs))
    creds = {
        "aws_access_key_id": env["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": env["AWS_SECRET_ACCESS_KEY"],
    }
    cfg = botocore.config.Config(
        s3={"addressing_style": "path"},
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        max_pool_connections=8,
    )
    c = botocore.session.get_session().create_client(
        "s3", endpoint_url=ep, region_name="us-east-1", config=cfg, **creds
    )
    c.create_bucket(Bucket="bench-botocore")
    t = time.perf_counter()
    with cf.ThreadPoolExecutor(4) as ex:
        list(
            ex.map(
                lambda i: c.put_object(Bucket="bench-botocore", Key=f"k{i}", Body=packs[i]), range(len(packs))
            )
        )
    put = time.perf_counter() - t
    t = time.perf_counter()
    with cf.ThreadPoolExecutor(4) as ex:
        list(
            ex.map(
                lambda i: c.get_object(Bucket="bench-botocore", Key=f"k{i}")["Body"].read(), range(len(packs))
            )
        )
    print(f"s3    botocore, 4 threads: put {rate(total, put)}  get {rate(total, time.perf_counter() - t)}")
    try:
        import obstore
        from obstore.store import S3Store
    except ImportError:
        print("s3    obstore: not installed, skipped")
        return
    c.create_bucket(Bucket="bench-obstore")
    store = S3Store(
        "bench-obstore",
        endpoint=ep,
        access_key_id=creds["aws_access_key_id"],
        secret_access_key=creds["aws_secret_access_key"],
        region="us-east-1",
        client_options={"allow_http": True},
        virtual_hosted_style_request=False,
    )
    t = time.perf_counter()
    with cf.ThreadPoolExecutor(4) as ex:
        list(ex.map(lambda i: obstore.put(store, f"k{i}", packs[i]), range(len(packs))))
    put = time.perf_counter() - t
    t = time.perf_counter()
    with cf.ThreadPoolExecutor(4) as ex:
        list(ex.map(lambda i: obstore.get(store, f"k{i}").bytes(), range(len(packs))))
    print(f"s3    obstore, 4 threads:  put {rate(total, put)}  get {rate(total, time.perf_counter() - t)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packs", type=int, default=12, help="16 MiB objects per line (default 12)")
    args = ap.parse_args()
    packs = [os.urandom(16 * MIB) for _ in range(args.packs)]
    with service("sshd", "SHADOWVAULT_TEST_SSH_HOST") as env:
        sftp_lines(env, packs)
    with service("s3", "SHADOWVAULT_TEST_S3_ENDPOINT") as env:
        s3_lines(env, packs)


if __name__ == "__main__":
    main()
