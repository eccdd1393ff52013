"""Tests of the benchmark's own machinery (not of timings): ``python -m pytest bench -q``.

The dataset must be reproducible, the restore check must catch wrong restores, the RSS figure must be
per process, and a tiny end-to-end run must produce a coherent report from the real tools.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

import pytest
import zstandard
from dataset import MANIFEST_NAME, DatasetSpec, ensure_dataset, generate, spec_for_size
from measure import run_measured
from verify import SourceHashes, verify_restore

TINY = DatasetSpec(small_files=60, big_files=2, big_size=5 * 1024 * 1024, directories=8)


def _digests(root: Path) -> dict[str, str]:
    out = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            p = Path(dirpath) / name
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def test_dataset_is_a_function_of_the_spec(tmp_path: Path) -> None:
    a = generate(tmp_path / "a", TINY)
    b = generate(tmp_path / "b", TINY)
    assert a == b
    assert _digests(tmp_path / "a") == _digests(tmp_path / "b")
    generate(tmp_path / "c", DatasetSpec(**{**TINY.__dict__, "seed": TINY.seed + 1}))
    assert set(_digests(tmp_path / "c").values()).isdisjoint(_digests(tmp_path / "a").values())
    assert len(a.files) == TINY.small_files + TINY.big_files
    sizes = [s for rel, s in a.files.items() if not rel.startswith("big/")]
    assert min(sizes) >= TINY.small_min and max(sizes) <= TINY.small_max
    assert len({rel.rpartition("/")[0] for rel in a.files}) > 3  # spread over directories


def test_dataset_is_reused_only_when_intact_and_same_spec(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    _, made = ensure_dataset(root, TINY)
    assert made
    _, made = ensure_dataset(root, TINY)
    assert not made
    victim = next(p for p in root.rglob("*.dat"))
    victim.write_bytes(b"x")
    _, made = ensure_dataset(root, TINY)
    assert made and victim.stat().st_size != 1
    (root / "stray").write_bytes(b"")
    _, made = ensure_dataset(root, TINY)
    assert made and not (root / "stray").exists()
    _, made = ensure_dataset(root, DatasetSpec(**{**TINY.__dict__, "small_files": 61}))
    assert made


def test_text_compresses_and_random_does_not(tmp_path: Path) -> None:
    m = generate(tmp_path, TINY)
    z = zstandard.ZstdCompressor(level=3)
    ratios = []
    for rel in m.files:
        data = (tmp_path / rel).read_bytes()
        ratios.append(len(z.compress(data)) / len(data))
    text = [r for r in ratios if r < 0.8]  # tiny text files compress less: zstd has little context
    rand = [r for r in ratios if r > 0.98]
    assert len(text) + len(rand) == len(ratios), "every file is clearly text or clearly random"
    assert len(text) >= len(ratios) // 4 and len(rand) >= len(ratios) // 4
    big = [(tmp_path / rel).read_bytes()[:65536] for rel in sorted(m.files) if rel.startswith("big/")]
    assert len(z.compress(big[0])) > 0.98 * len(big[0]) and len(z.compress(big[1])) < 0.5 * len(big[1])


def test_spec_for_size_scales_to_the_issue_dataset() -> None:
    s = spec_for_size(1)
    assert (s.small_files, s.big_files, s.big_size) == (20_000, 6, 64 * 1024 * 1024)
    assert 0.9 * 2**30 < s.approx_bytes < 1.1 * 2**30
    assert spec_for_size(0.01).approx_bytes < 0.05 * 2**30


def test_verify_catches_every_kind_of_wrong_restore(tmp_path: Path) -> None:
    src = tmp_path / "src"
    m = generate(src, TINY)
    hashes = SourceHashes(src, m)
    good = tmp_path / "restored"
    shutil.copytree(src, good)
    assert verify_restore(good, hashes).ok

    sampled = hashes.sample()[0]
    data = bytearray((good / sampled).read_bytes())
    data[len(data) // 2] ^= 1
    (good / sampled).write_bytes(bytes(data))
    shortened = hashes.sample()[1]
    (good / shortened).write_bytes((good / shortened).read_bytes()[:-1])
    missing = sorted(m.files)[-1]
    (good / missing).unlink()
    (good / "extra.txt").write_bytes(b"")
    v = verify_restore(good, hashes)
    text = "\n".join(v.problems)
    assert not v.ok
    assert f"{sampled}: content differs" in text
    assert f"{shortened}: size" in text
    assert f"missing {missing}" in text
    assert "unexpected file extra.txt" in text
    assert MANIFEST_NAME not in text


def test_peak_rss_is_that_of_the_measured_process_alone(tmp_path: Path) -> None:
    env = dict(os.environ)
    big = run_measured(
        [sys.executable, "-c", "b = bytearray(300 * 2**20); b[::4096] = b'x' * len(b[::4096])"],
        env,
        tmp_path,
        "big",
    )
    small = run_measured([sys.executable, "-c", "pass"], env, tmp_path, "small")
    assert big.returncode == small.returncode == 0
    assert big.peak_rss_kib > 300 * 1024
    assert small.peak_rss_kib < 100 * 1024  # not the high-water mark of all children so far
    failing = run_measured([sys.executable, "-c", "raise SystemExit(7)"], env, tmp_path, "fail")
    assert failing.returncode == 7


@pytest.mark.skipif(shutil.which("restic") is None, reason="restic not installed")
def test_tiny_end_to_end_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import run

    code = run.main(
        [
            "--size-gib",
            "0.005",
            "--workdir",
            str(tmp_path / "work"),
            "--data-dir",
            str(tmp_path / "data"),
            "--cache",
            "warm",
            "--json",
        ]
    )
    doc = json.loads(capsys.readouterr().out)
    assert code == 0, doc["problems"]
    assert doc["ok"] and doc["restic_check_of_shadowvault_repo"] == "ok"
    assert [s["step"] for s in doc["steps"]] == ["first backup", "no-change backup", "full restore"]
    for s in doc["steps"]:
        sv, rs = s["shadowvault"], s["restic"]
        assert sv["wall_s"] > 0 and rs["wall_s"] > 0 and sv["peak_rss_kib"] > 0 and rs["peak_rss_kib"] > 0
        assert s["ratio"] == pytest.approx(sv["wall_s"] / rs["wall_s"], rel=0.01)
    assert doc["verify_shadowvault"]["files_checked"] == doc["files"]
    assert doc["verify_restic"]["hashed"] > 0
    ov = doc["open_files_overhead"]
    assert ov["overhead_pct"] == pytest.approx((ov["default_s"] / ov["allow_write_s"] - 1) * 100)
    assert not (tmp_path / "work").exists()  # cleaned up without --keep


def test_hotspot_summary_counts_self_and_inclusive_per_thread_group(tmp_path: Path) -> None:
    from hotspots import summarise

    raw = tmp_path / "x.raw"
    raw.write_text(
        "thread (1): MainThread;main (a.py:1);walk (b.py:2);read (c.py:3) 6\n"
        "thread (2): blob_0;Thread.run (threading.py:9);save (d.py:4);compress (e.py:5) 3\n"
        "thread (3): blob_1;Thread.run (threading.py:9);save (d.py:4);compress (e.py:6) 1\n"
    )
    text = summarise(raw, 10)
    assert "MainThread 6, blob 4" in text
    self_part, incl_part = text.split("inclusive:")
    assert " 60.0%  MainThread read (c.py)" in self_part
    assert " 40.0%  blob       compress (e.py)" in self_part  # line numbers merged, workers merged
    assert " 40.0%  blob       save (d.py)" in incl_part
    assert "Thread.run" not in incl_part and "main (a.py)" not in incl_part
