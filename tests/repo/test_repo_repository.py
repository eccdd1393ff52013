"""Repository facade on the mem and local backends: blobs, packs, trees, snapshots, errors."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
from tests.repo.repo_helpers import FAST_KDF, PASSWORD, walk, write_sample

from shadowvault.errors import (
    IntegrityError,
    RepoError,
    RepoNotFoundError,
    UnsupportedRepoError,
    WrongPasswordError,
)
from shadowvault.repo import (
    BlobType,
    FileType,
    LocalBackend,
    MemBackend,
    Node,
    Repository,
    Snapshot,
    Tree,
    check_repository,
    crypto,
)
from shadowvault.repo.check import read_pack_header
from shadowvault.repo.files.config import RepoConfig
from shadowvault.repo.ids import hash_bytes


@pytest.fixture
def repo() -> Repository:
    return Repository.init(MemBackend(), PASSWORD, kdf=FAST_KDF, pack_size=64 * 1024)


def test_blob_round_trip_dedup_and_length(repo: Repository) -> None:
    data = os.urandom(10_000)
    blob_id, added = repo.save_blob(BlobType.DATA, data)
    assert blob_id == hash_bytes(data) and added
    assert repo.save_blob(BlobType.DATA, data) == (blob_id, False)
    assert repo.has_blob(BlobType.DATA, blob_id)
    assert not repo.has_blob(BlobType.TREE, blob_id)
    # Readable before flush (still in the open pack) and after.
    assert repo.load_blob(BlobType.DATA, blob_id) == data
    assert repo.blob_length(BlobType.DATA, blob_id) == 10_000
    repo.flush()
    assert repo.load_blob(BlobType.DATA, blob_id) == data
    assert repo.blob_length(BlobType.DATA, blob_id) == 10_000


def test_compressible_blobs_are_compressed_and_random_ones_not(repo: Repository) -> None:
    zeros = bytes(50_000)
    noise = os.urandom(5_000)
    zid, _ = repo.save_blob(BlobType.DATA, zeros)
    nid, _ = repo.save_blob(BlobType.DATA, noise)
    repo.flush()
    zentry = repo.index.lookup(BlobType.DATA, zid)
    nentry = repo.index.lookup(BlobType.DATA, nid)
    assert zentry is not None and nentry is not None
    assert zentry.blob.uncompressed_length == 50_000 and zentry.blob.length < 1000
    assert nentry.blob.uncompressed_length is None and nentry.blob.length == 5_000 + crypto.EXTENSION
    assert repo.load_blob(BlobType.DATA, zid) == zeros


def test_packs_split_by_size_and_type(repo: Repository) -> None:
    data_ids = [repo.save_blob(BlobType.DATA, os.urandom(20_000))[0] for _ in range(10)]
    tree_id = repo.save_tree(Tree([Node(name="f", type="file", content=data_ids)]))
    repo.flush()
    packs = repo.index.pack_ids()
    assert len(packs) >= 4  # 200 kB of data in 64 kB packs, plus a tree pack
    for pid in packs:
        size = repo.backend.stat(FileType.PACK, pid.hex())
        header = read_pack_header(repo, pid.hex(), size)
        assert len({b.type for b in header}) == 1, "a pack mixes data and tree blobs"
        assert header == repo.index.pack_blobs(pid)
        assert hash_bytes(repo.backend.load(FileType.PACK, pid.hex())) == pid
    assert repo.load_tree(tree_id).nodes[0].content == data_ids
    assert len(list(repo.backend.list(FileType.INDEX))) == 1


def test_concurrent_save_blob_from_threads(repo: Repository) -> None:
    chunks = [os.urandom(3000) for _ in range(60)]
    results: list[tuple[bytes, bool]] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def worker(offset: int) -> None:
        try:
            # Every thread saves every chunk: exactly one save per chunk may add it.
            for i in range(len(chunks)):
                r = repo.save_blob(BlobType.DATA, chunks[(i + offset) % len(chunks)])
                with lock:
                    results.append(r)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n * 7,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    added = [bid for bid, was_added in results if was_added]
    assert sorted(added) == sorted(hash_bytes(c) for c in chunks)
    repo.flush()
    for c in chunks:
        assert repo.load_blob(BlobType.DATA, hash_bytes(c)) == c
    assert repo.index.blob_count() == len(chunks)
    assert check_repository(repo, read_data=True) == []


def test_reopen_sees_snapshots_trees_and_blobs(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "repo")
    repo = Repository.init(backend, PASSWORD, kdf=FAST_KDF)
    files = {"a.txt": b"alpha" * 1000, "b.bin": os.urandom(9000)}
    first = write_sample(repo, files, time_ns=1_700_000_000_000_000_000, tags=["one"])
    second = write_sample(repo, {"c": b"gamma"}, time_ns=1_700_000_100_000_000_000, tags=["two"])
    repo.close()

    again = Repository.open(LocalBackend(tmp_path / "repo"), PASSWORD)
    assert again.config == repo.config and again.config["version"] == 2
    again.load_index()
    snaps = again.list_snapshots()
    assert [sid for sid, _ in snaps] == [first, second]
    assert again.find_snapshot("latest")[0] == second
    assert again.find_snapshot(first[:10])[0] == first
    _, snap = again.find_snapshot(first)
    assert snap.tags == ["one"] and snap.hostname == "testhost"
    found = {p: n for p, n in walk(again, snap.tree)}
    assert set(found) == {"/data", "/data/a.txt", "/data/b.bin"}
    node = found["/data/a.txt"]
    assert node.extra == {"shadowvault": {"class": "ok"}}
    content = b"".join(again.load_blob(BlobType.DATA, c) for c in node.content or [])
    assert content == files["a.txt"]
    with pytest.raises(RepoError, match="no snapshot file matches"):
        again.find_snapshot("ffffffff")


def test_load_file_gives_plain_json(repo: Repository) -> None:
    sid = write_sample(repo, {"x": b"y"}, time_ns=1, tags=[])
    assert repo.load_file(FileType.SNAPSHOT, sid[:8]).startswith(b'{"time":')
    assert b'"chunker_polynomial"' in repo.load_file(FileType.CONFIG, "")
    ((index_name, _),) = repo.backend.list(FileType.INDEX)
    assert repo.load_file(FileType.INDEX, index_name).startswith(b'{"packs":')
    ((key_name, _),) = repo.backend.list(FileType.KEY)
    assert b'"kdf":"scrypt"' in repo.load_file(FileType.KEY, key_name)


def test_unpacked_files_are_compressed_in_v2_and_plain_in_v1() -> None:
    v2 = Repository.init(MemBackend(), PASSWORD, kdf=FAST_KDF)
    v1 = Repository.init(MemBackend(), PASSWORD, kdf=FAST_KDF, version=1)
    for r, first_byte in ((v2, 2), (v1, ord("{"))):
        fid = r.save_unpacked(FileType.SNAPSHOT, b'{"a":1}')
        plain = crypto.open_(r.key, r.backend.load(FileType.SNAPSHOT, fid.hex()))
        assert plain[0] == first_byte
        assert r.load_unpacked(FileType.SNAPSHOT, fid.hex()) == b'{"a":1}'


def test_corrupt_blob_raises_integrity_error_naming_blob_and_pack(tmp_path: Path) -> None:
    backend = MemBackend()
    repo = Repository.init(backend, PASSWORD, kdf=FAST_KDF)
    blob_id, _ = repo.save_blob(BlobType.DATA, b"precious" * 100)
    repo.flush()
    entry = repo.index.lookup(BlobType.DATA, blob_id)
    assert entry is not None
    backend.corrupt(FileType.PACK, entry.pack_id.hex(), entry.blob.offset + 20)
    with pytest.raises(IntegrityError) as info:
        repo.load_blob(BlobType.DATA, blob_id)
    msg = str(info.value)
    assert blob_id.hex() in msg and entry.pack_id.hex() in msg and "\n" not in msg


def _one_line(exc: pytest.ExceptionInfo[BaseException]) -> str:
    text = str(exc.value)
    assert "\n" not in text and text
    return text


def test_open_errors(tmp_path: Path) -> None:
    with pytest.raises(RepoNotFoundError) as missing:
        Repository.open(LocalBackend(tmp_path / "nowhere"), PASSWORD)
    assert "shadowvault init" in _one_line(missing) and "nowhere" in str(missing.value)

    plain_dir = tmp_path / "plain"
    plain_dir.mkdir()
    (plain_dir / "somefile").write_text("not a repository")
    with pytest.raises(RepoNotFoundError) as not_repo:
        Repository.open(LocalBackend(plain_dir), PASSWORD)
    assert str(plain_dir) in _one_line(not_repo)

    backend = LocalBackend(tmp_path / "repo")
    Repository.init(backend, PASSWORD, kdf=FAST_KDF)
    with pytest.raises(WrongPasswordError) as wrong:
        Repository.open(backend, "guess")
    assert "password" in _one_line(wrong)

    with pytest.raises(RepoError) as twice:
        Repository.init(backend, PASSWORD, kdf=FAST_KDF)
    assert "already exists" in _one_line(twice)


def test_unknown_config_version_is_unsupported() -> None:
    backend = MemBackend()
    repo = Repository.init(backend, PASSWORD, kdf=FAST_KDF)
    future = RepoConfig(3, repo.cfg.id, repo.cfg.chunker_polynomial)
    backend.remove(FileType.CONFIG, "config")
    backend.save(FileType.CONFIG, "config", crypto.seal(repo.key, future.to_json()))
    with pytest.raises(UnsupportedRepoError) as info:
        Repository.open(backend, PASSWORD)
    assert "version 3" in _one_line(info)


@pytest.mark.parametrize("damage", ["truncate", "not json", "bad base64", "unknown kdf"])
def test_unreadable_key_file_is_a_repo_error(tmp_path: Path, damage: str) -> None:
    backend = LocalBackend(tmp_path / "repo")
    Repository.init(backend, PASSWORD, kdf=FAST_KDF)
    (key_path,) = (tmp_path / "repo" / "keys").iterdir()
    raw = key_path.read_bytes()
    bad = {
        "truncate": raw[: len(raw) // 2],
        "not json": b"\x00\x01garbage",
        "bad base64": raw.replace(b'"data":"', b'"data":"!!'),
        "unknown kdf": raw.replace(b'"scrypt"', b'"argon9"'),
    }[damage]
    key_path.chmod(0o600)
    key_path.write_bytes(bad)
    with pytest.raises(RepoError) as info:
        Repository.open(backend, PASSWORD)
    assert not isinstance(info.value, WrongPasswordError)
    assert "key file" in _one_line(info)


def test_second_key_file_with_other_password_still_opens(repo: Repository) -> None:
    from shadowvault.repo.files import key as keyfile

    kf = keyfile.create(repo.key, "other", crypto.KdfParams(*FAST_KDF), username="u", hostname="h")
    raw = kf.to_json()
    repo.backend.save(FileType.KEY, hash_bytes(raw).hex(), raw)
    assert Repository.open(repo.backend, "other").key == repo.key
    assert Repository.open(repo.backend, PASSWORD).key == repo.key


def test_failed_pack_upload_is_sticky(tmp_path: Path) -> None:
    class FailingBackend(MemBackend):
        fail = False

        def save(self, ft: FileType, name: str, data: bytes | bytearray | memoryview) -> None:
            if self.fail and ft is FileType.PACK:
                raise OSError(28, "No space left on device")
            super().save(ft, name, data)

    backend = FailingBackend()
    repo = Repository.init(backend, PASSWORD, kdf=FAST_KDF, pack_size=1000)
    backend.fail = True
    # The full pack is written by the upload thread: its error surfaces at the next call.
    repo.save_blob(BlobType.DATA, os.urandom(2000))
    with pytest.raises(RepoError, match="No space left"):
        repo.flush()
    with pytest.raises(RepoError, match="earlier pack upload failed"):
        repo.save_blob(BlobType.DATA, b"next")
    with pytest.raises(RepoError):
        repo.flush()
    assert list(backend.list(FileType.INDEX)) == []


def test_pack_uploads_run_beside_the_savers_with_bounded_backlog() -> None:
    """A slow pack write does not stop blob saving, but at most MAX_QUEUED_UPLOADS packs wait."""
    from shadowvault.repo.packer import MAX_QUEUED_UPLOADS

    gate = threading.Event()

    class SlowBackend(MemBackend):
        def save(self, ft: FileType, name: str, data: bytes | bytearray | memoryview) -> None:
            if ft is FileType.PACK:
                gate.wait(30)
            super().save(ft, name, data)

    before = set(threading.enumerate())
    backend = SlowBackend()
    repo = Repository.init(backend, PASSWORD, kdf=FAST_KDF, pack_size=1000)
    saved: list[bytes] = []

    def save_many() -> None:
        for _ in range(MAX_QUEUED_UPLOADS + 3):
            saved.append(repo.save_blob(BlobType.DATA, os.urandom(1500))[0])

    t = threading.Thread(target=save_many)
    t.start()
    deadline = time.monotonic() + 10
    while len(saved) < MAX_QUEUED_UPLOADS and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)
    # Every saved blob filled a pack: one is being written, MAX_QUEUED_UPLOADS - 1 wait,
    # and the next saver is held until the writer catches up.
    assert len(saved) == MAX_QUEUED_UPLOADS
    assert t.is_alive()
    assert list(backend.list(FileType.PACK)) == []
    gate.set()
    t.join(10)
    assert not t.is_alive()
    repo.flush()
    assert len(list(backend.list(FileType.PACK))) == MAX_QUEUED_UPLOADS + 3
    # The upload thread ends with the flush: no thread outlives the session that needed it.
    assert not [t for t in set(threading.enumerate()) - before if t.name.startswith("upload")]
    for blob_id in saved:
        assert repo.load_blob(BlobType.DATA, blob_id)


def test_snapshot_time_and_fields_survive(repo: Repository) -> None:
    now = time.time_ns()
    tree = repo.save_tree(Tree([]))
    repo.flush()
    snap = Snapshot(time=now, tree=tree, paths=["/x"], excludes=["*.tmp"], uid=1000, gid=100, parent=None)
    sid = repo.save_snapshot(snap)
    assert repo.find_snapshot(sid)[1] == snap
    assert repo.load_tree(tree).nodes == []


def test_pack_upload_runs_outside_the_lock_and_pending_blobs_stay_visible() -> None:
    class GatedBackend(MemBackend):
        def __init__(self) -> None:
            super().__init__()
            self.entered = threading.Event()
            self.release = threading.Event()

        def save(self, ft: FileType, name: str, data: bytes | bytearray | memoryview) -> None:
            if ft is FileType.PACK:
                self.entered.set()
                assert self.release.wait(10)
            super().save(ft, name, data)

    backend = GatedBackend()
    repo = Repository.init(backend, PASSWORD, kdf=FAST_KDF, pack_size=4096)
    big = os.urandom(5000)
    uploader = threading.Thread(target=repo.save_blob, args=(BlobType.DATA, big))
    uploader.start()
    assert backend.entered.wait(10)
    try:
        # The filling thread is stuck in the upload; others must not be.
        small_id, added = repo.save_blob(BlobType.DATA, b"small")
        assert added
        assert repo.has_blob(BlobType.DATA, hash_bytes(big))
        assert repo.load_blob(BlobType.DATA, hash_bytes(big)) == big
        assert repo.save_blob(BlobType.DATA, big) == (hash_bytes(big), False)
    finally:
        backend.release.set()
        uploader.join()
    repo.flush()
    assert repo.load_blob(BlobType.DATA, small_id) == b"small"
    assert len(list(backend.list(FileType.PACK))) == 2
