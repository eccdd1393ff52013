"""The progress totals of a backup (issue 10): counted in a child process with the backup's own
selection rules, the same totals as the in-thread walk and as ``backup --dry-run``."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from shadowvault.engine.backup import BackupOptions
from shadowvault.engine.scan import TotalsScan, dry_run
from shadowvault.fs.defaults import CACHEDIR_TAG_SIGNATURE


def _tree(root: Path) -> None:
    for d in range(3):
        sub = root / f"d{d}"
        sub.mkdir(parents=True)
        for f in range(40):
            (sub / f"f{f}.txt").write_bytes(b"x" * (d * 100 + f))
        (sub / "skip.log").write_text("excluded by pattern")
    cache = root / "cache"
    cache.mkdir()
    (cache / "CACHEDIR.TAG").write_bytes(CACHEDIR_TAG_SIGNATURE + b"\n")
    (cache / "big.bin").write_bytes(b"y" * 5000)
    os.symlink("d0/f1.txt", root / "link")


def _finished(scan: TotalsScan) -> TotalsScan:
    deadline = time.monotonic() + 60
    while not scan.done and time.monotonic() < deadline:
        time.sleep(0.02)
    scan.stop()
    return scan


def test_child_counts_what_the_backup_selects(tmp_path: Path) -> None:
    _tree(tmp_path / "src")
    opts = BackupOptions(sources=[str(tmp_path / "src")], excludes=["*.log"])
    expected = dry_run(opts)
    assert expected.files == 120
    scan = _finished(TotalsScan(opts).start())
    assert scan.done and scan._child is not None, "the totals did not come from the child process"
    assert (scan.files, scan.bytes) == (expected.files, expected.bytes)
    here = TotalsScan(opts)
    here._run_here()
    assert (here.files, here.bytes, here.done) == (expected.files, expected.bytes, True)


def test_stop_ends_the_child(tmp_path: Path) -> None:
    _tree(tmp_path / "src")
    scan = TotalsScan(BackupOptions(sources=[str(tmp_path / "src")])).start()
    scan.stop()
    scan._thread.join(30)
    assert not scan._thread.is_alive()
    if scan._child is not None:
        assert scan._child.poll() is not None, "the counting process outlived stop()"


def test_child_protocol_and_a_bad_pattern(tmp_path: Path) -> None:
    _tree(tmp_path / "src")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    run = [sys.executable, "-m", "shadowvault.fs.count"]
    ok = subprocess.run(
        run, input=f'{{"roots": ["{tmp_path / "src"}"]}}', capture_output=True, text=True, env=env
    )
    assert ok.returncode == 0 and ok.stdout.splitlines()[-1].startswith(
        "done 125 "
    )  # no marker rule given: cache/ counts, ok.stdout + ok.stderr
    bad = subprocess.run(
        run, input='{"roots": ["/"], "exclude": ["[a"]}', capture_output=True, text=True, env=env
    )
    assert bad.returncode == 1 and "done" not in bad.stdout, bad.stdout + bad.stderr
