"""The streaming machinery with real child processes (no database needed): bytes arrive intact and
in order through the chunker, a verifier that stops reading early does not stall the stream, and
a tool's exit code and last stderr lines are kept."""

from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from pyfastcdc import FastCDC

from shadowvault.engine.hotbackup.stream import DumpJob, StreamResult, database_of, file_name_of, stream_dump


def _run(job: DumpJob) -> tuple[bytes, StreamResult]:
    chunker = FastCDC(1024 * 1024, min_size=512 * 1024, max_size=8 * 1024 * 1024)
    stored: dict[int, bytes] = {}
    with ThreadPoolExecutor(2) as pool:

        def submit(data: bytes) -> Future[bytes]:
            stored[len(stored)] = data
            return pool.submit(lambda: data[:8])

        res = stream_dump(job, dict(os.environ), chunker, submit)
    return b"".join(stored[i] for i in range(len(stored))), res


def test_stream_is_stored_whole_and_the_early_verifier_does_not_block(tmp_path: Path) -> None:
    src = tmp_path / "data"
    src.write_bytes(os.urandom(3 * 1024 * 1024) + b"tail\n-- Dump completed on today\n")
    job = DumpJob(
        "db",
        "db.sql",
        ["cat", str(src)],
        verify_argv=["sh", "-c", "head -c 100 > /dev/null"],  # reads the head, then exits
        trailer=b"-- Dump completed",
    )
    data, res = _run(job)
    assert data == src.read_bytes()
    assert res.size == len(data) and res.returncode == 0 and res.verify_returncode == 0
    assert res.tail.endswith(b"-- Dump completed on today\n")


def test_tool_failure_keeps_exit_code_and_last_stderr_lines(tmp_path: Path) -> None:
    script = "head -c 100000 /dev/zero; for i in $(seq 1 50); do echo line $i >&2; done; exit 7"
    _, res = _run(DumpJob("db", "db.dump", ["sh", "-c", script]))
    assert res.returncode == 7 and res.size == 100000
    assert res.stderr[-1] == "line 50" and len(res.stderr) == 20


def test_database_names_become_safe_file_names() -> None:
    assert file_name_of("app", ".dump") == "app.dump"
    assert file_name_of("a/b%c", ".sql") == "a%2Fb%25c.sql"
    assert database_of("a%2Fb%25c.sql", ".sql") == "a/b%c"
