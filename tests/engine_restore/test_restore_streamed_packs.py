"""Restore hands a pack's planned blobs to the workers while the walk goes on.

With the default 16 MiB packs, hundreds of small files share one pack, so its plan reaches the
4 MiB task size several times during the walk and that pack is restored by several tasks, some
running before the walk has seen the rest of the pack. These tests pin what must not change with
that: every file complete with its metadata (including a large file whose blobs span packs and
whose packs reach the task size in the middle of the file, and files repeating content whose
blob went out in an earlier task), existing files kept, empty files and hard links, a corrupt
blob in a pack whose other blobs are restored by other tasks named in the error, and the cycle
collector switched back on however the restore ends.
"""

from __future__ import annotations

import gc
import hashlib
import os
import random
import shutil
from pathlib import Path

import pytest

from shadowvault.engine.backup import BackupOptions, BackupSession
from shadowvault.engine.events import ListSink, Warning_
from shadowvault.engine.restore import RestoreOptions, RestoreResult, RestoreSession
from shadowvault.errors import IntegrityError
from shadowvault.repo import BlobType, LocalBackend, Repository
from treeutil import PASSWORD

FAST_KDF = (1024, 8, 1)
SMALL_FILES = 700
SMALL_SIZE = 16 * 1024
OTHER_FILES = 6  # e_big, the two repeats, empty, zeros, the link's second name


def _open(path: Path) -> Repository:
    repo = Repository.open(LocalBackend(path), PASSWORD)
    repo.load_index()
    return repo


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """~11 MiB of incompressible small files, a 24 MiB file over two packs, repeats, links, zeros."""
    src = tmp_path_factory.mktemp("streamed") / "src"
    rnd = random.Random(1234)
    for i in range(SMALL_FILES):
        d = src / f"d{i % 7}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i:04}.bin").write_bytes(rnd.randbytes(SMALL_SIZE + i))
    # Walked after every d*/ file: its chunks fill the rest of the first pack and a second one.
    (src / "e_big.bin").write_bytes(rnd.randbytes(24 * 1024 * 1024))
    # Same content as files whose blobs went out in earlier tasks: the blob is read again.
    (src / "z_repeat.bin").write_bytes((src / "d0" / "f0000.bin").read_bytes())
    (src / "z_repeat2.bin").write_bytes((src / "d3" / "f0003.bin").read_bytes())
    (src / "z_empty").write_bytes(b"")
    (src / "z_zeros.bin").write_bytes(bytes(40_000))  # one all-zero blob: a hole, then the length
    os.link(src / "d1" / "f0001.bin", src / "z_link.bin")
    os.chmod(src / "d2" / "f0002.bin", 0o640)
    os.utime(src / "e_big.bin", ns=(1_500_000_000_000_000_000, 1_600_000_000_123_456_789))
    return src


@pytest.fixture(scope="module")
def repo_path(source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("streamed-repo") / "repo"
    Repository.init(LocalBackend(path), PASSWORD, kdf=FAST_KDF).close()
    repo = _open(path)
    try:
        with repo.lock():
            options = BackupOptions(sources=[str(source)], use_default_excludes=False)
            result = BackupSession(repo, options, ListSink()).run()
        assert result.exit_code == 0
    finally:
        repo.close()
    return path


def restore(repo_path: Path, target: Path, sink: ListSink | None = None) -> RestoreResult:
    repo = _open(repo_path)
    try:
        with repo.lock(exclusive=False):
            return RestoreSession(repo, RestoreOptions(target=str(target)), sink or ListSink()).run("latest")
    finally:
        repo.close()


def files_of(root: Path) -> dict[str, Path]:
    return {str(p.relative_to(root)): p for p in root.rglob("*") if p.is_file()}


def content_bytes(root: Path) -> int:
    """Bytes a restore writes: a hard link's second name adds none."""
    return sum(p.stat().st_size for rel, p in files_of(root).items() if rel != "z_link.bin")


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_dataset_really_spreads_one_pack_over_several_tasks(repo_path: Path) -> None:
    """Guards the premise of the other tests: one pack holds far more than one task's bytes."""
    repo = _open(repo_path)
    try:
        packs = {}
        for pack_id in repo.index.pack_ids():
            blobs = [b for b in repo.index.pack_blobs(pack_id) if b.type is BlobType.DATA]
            packs[pack_id] = sum(b.length for b in blobs)
    finally:
        repo.close()
    assert len(packs) >= 2
    assert max(packs.values()) >= 3 * 4 * 1024 * 1024


def test_every_file_complete_with_metadata(source: Path, repo_path: Path, tmp_path: Path) -> None:
    result = restore(repo_path, tmp_path)
    assert result.exit_code == 0
    out = tmp_path / str(source).lstrip("/")
    want, got = files_of(source), files_of(out)
    assert sorted(got) == sorted(want)
    for rel, path in want.items():
        st, gt = path.stat(), got[rel].stat()
        assert (gt.st_size, gt.st_mode, gt.st_mtime_ns) == (st.st_size, st.st_mode, st.st_mtime_ns), rel
        assert sha(got[rel]) == sha(path), rel
    assert os.stat(out / "z_link.bin").st_ino == os.stat(out / "d1" / "f0001.bin").st_ino
    assert os.stat(out / "z_zeros.bin").st_blocks == 0, "an all-zero blob was written out"
    assert result.files == SMALL_FILES + OTHER_FILES
    assert result.bytes == content_bytes(source)


def test_existing_files_are_kept_whichever_task_meets_them(
    source: Path, repo_path: Path, tmp_path: Path
) -> None:
    out = tmp_path / str(source).lstrip("/")
    mine = ["d0/f0000.bin", "d5/f0355.bin", "e_big.bin", "z_empty"]
    for rel in mine:
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_bytes(b"mine " + rel.encode())
    sink = ListSink()
    result = restore(repo_path, tmp_path, sink)
    assert result.exit_code == 3
    assert result.skipped_existing == len(mine)
    assert result.files == SMALL_FILES + OTHER_FILES - len(mine)
    kept = sum((source / rel).stat().st_size for rel in mine)
    assert result.bytes == content_bytes(source) - kept
    for rel in mine:
        assert (out / rel).read_bytes() == b"mine " + rel.encode()
    warnings = [e.message for e in sink.events if isinstance(e, Warning_)]
    assert len([w for w in warnings if "exists, not overwritten" in w]) == len(mine)
    # The repeat of a kept file's content is still restored from the repository.
    assert sha(out / "z_repeat.bin") == sha(source / "d0" / "f0000.bin")
    assert gc.isenabled()


def test_a_corrupt_blob_mid_pack_names_blob_and_pack(source: Path, repo_path: Path, tmp_path: Path) -> None:
    repo = _open(repo_path)
    try:
        pack_id = max(repo.index.pack_ids(), key=lambda p: len(repo.index.pack_blobs(p)))
        blobs = sorted(repo.index.pack_blobs(pack_id), key=lambda b: b.offset)
        victim = blobs[len(blobs) // 2]
    finally:
        repo.close()
    broken = tmp_path / "broken"
    shutil.copytree(repo_path, broken)
    pack_file = broken / "data" / pack_id.hex()[:2] / pack_id.hex()
    os.chmod(pack_file, 0o600)
    with open(pack_file, "r+b") as f:
        f.seek(victim.offset + victim.length // 2)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0x55]))
    with pytest.raises(IntegrityError) as err:
        restore(broken, tmp_path / "out")
    message = str(err.value)
    assert victim.id.hex() in message and pack_id.hex() in message, message
    assert "\n" not in message
    assert gc.isenabled()
