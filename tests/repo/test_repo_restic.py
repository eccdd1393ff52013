"""Interoperability with the real restic binary, both directions, and check on corruption."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from tests.conftest import require_binary
from tests.repo.repo_helpers import FAST_KDF, PASSWORD, restic, unpack_fixture, walk, write_sample

from shadowvault.errors import IntegrityError
from shadowvault.repo import BlobType, FileType, LocalBackend, Repository, check_repository
from shadowvault.repo.files.jsonfmt import parse_time


@pytest.fixture
def restic_bin() -> str:
    return require_binary("restic")


def _make_ours(tmp_path: Path, version: int = 2) -> tuple[Path, list[str]]:
    path = tmp_path / "ours"
    repo = Repository.init(LocalBackend(path), PASSWORD, kdf=FAST_KDF, pack_size=256 * 1024, version=version)
    files = {
        "zeros": bytes(300_000),
        "random": os.urandom(500_000),
        "small": b"tiny",
        "empty": b"",
    }
    first = write_sample(repo, files, time_ns=1_750_000_000_123_456_789, tags=["first"])
    second = write_sample(repo, {"other": b"x" * 9000}, time_ns=1_750_000_999_000_000_000, tags=["second"])
    repo.close()
    return path, [first, second]


@pytest.mark.parametrize("version", [2, 1])
def test_restic_checks_and_lists_what_we_wrote(tmp_path: Path, restic_bin: str, version: int) -> None:
    path, ids = _make_ours(tmp_path, version)
    assert json.loads(restic(path, "cat", "config").stdout)["version"] == version
    result = restic(path, "check", "--read-data")
    assert "no errors were found" in result.stdout
    listed = json.loads(restic(path, "snapshots", "--json").stdout)
    assert [s["id"] for s in listed] == ids
    assert [s["tags"] for s in listed] == [["first"], ["second"]]
    assert parse_time(listed[0]["time"]) == 1_750_000_000_123_456_789
    # restic restores the exact bytes we stored.
    target = tmp_path / "restored"
    restic(path, "restore", ids[0], "--target", str(target))
    assert (target / "data" / "zeros").read_bytes() == bytes(300_000)
    assert (target / "data" / "small").read_bytes() == b"tiny"
    assert (target / "data" / "empty").read_bytes() == b""


def test_non_utf8_names_restore_exactly_with_restic(tmp_path: Path, restic_bin: str) -> None:
    from shadowvault.repo import Node, Snapshot, Tree

    path = tmp_path / "names"
    repo = Repository.init(LocalBackend(path), PASSWORD, kdf=FAST_KDF)
    raw_names = [b"caf\xe9", b'quote"and\\slash', b"new\nline", "ünï".encode()]
    nodes = []
    for raw in raw_names:
        blob, _ = repo.save_blob(BlobType.DATA, raw)
        nodes.append(Node(name=os.fsdecode(raw), type="file", mode=0o600, size=len(raw), content=[blob]))
    root = repo.save_tree(Tree(nodes))
    repo.flush()
    sid = repo.save_snapshot(Snapshot(time=1, tree=root, paths=["/"], hostname="h"))
    assert "no errors were found" in restic(path, "check", "--read-data").stdout
    target = tmp_path / "out"
    restic(path, "restore", sid, "--target", str(target))
    assert sorted(os.listdir(os.fsencode(target))) == sorted(raw_names)
    for raw in raw_names:
        with open(os.fsencode(target) + b"/" + raw, "rb") as f:
            assert f.read() == raw


def _restic_lossy(name: str) -> str:
    # restic's JSON output replaces undecodable bytes with U+FFFD.
    return os.fsencode(name).decode("utf-8", "replace")


def test_restic_fixture_opens_and_checks_clean(tmp_path: Path) -> None:
    path, expected = unpack_fixture(tmp_path)
    repo = Repository.open(LocalBackend(path), expected["password"])
    assert repo.config["version"] == 2
    repo.load_index()
    snaps = repo.list_snapshots()
    assert [(sid, s.tree.hex(), s.tags, s.hostname) for sid, s in snaps] == [
        (e["id"], e["tree"], e["tags"], e["hostname"]) for e in expected["snapshots"]
    ]
    latest_id, latest = repo.find_snapshot("latest")
    assert latest_id == expected["snapshots"][-1]["id"]
    listing = [
        {"path": _restic_lossy(p), "type": n.type, "size": n.size if n.type == "file" else 0}
        for p, n in walk(repo, latest.tree)
    ]
    assert listing == expected["latest_ls"]
    # Every file's content adds up to its size; the xattr and symlink made it through.
    nodes = dict(walk(repo, latest.tree))
    for node in nodes.values():
        if node.type == "file":
            assert sum(repo.blob_length(BlobType.DATA, c) for c in node.content or []) == node.size
    hello = nodes["/src/hello.txt"]
    assert b"".join(repo.load_blob(BlobType.DATA, c) for c in hello.content or []) == b"hello world\n"
    assert ("user.shadow", b"vault") in hello.extended_attributes
    assert nodes["/src/link"].linktarget == "hello.txt"
    assert check_repository(repo, read_data=True) == []


def test_live_restic_backup_opens_here(tmp_path: Path, restic_bin: str) -> None:
    path = tmp_path / "theirs"
    restic(path, "init")
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    (src / "d" / "f").write_bytes(os.urandom(70_000))
    (src / "g").write_text("text")
    restic(path, "backup", str(src))
    theirs = json.loads(restic(path, "snapshots", "--json").stdout)
    repo = Repository.open(LocalBackend(path), PASSWORD)
    assert [(sid, s.tree.hex()) for sid, s in repo.list_snapshots()] == [(t["id"], t["tree"]) for t in theirs]
    nodes = dict(walk(repo, repo.list_snapshots()[0][1].tree))
    f = next(n for p, n in nodes.items() if p.endswith("/d/f"))
    assert (
        b"".join(repo.load_blob(BlobType.DATA, c) for c in f.content or []) == (src / "d" / "f").read_bytes()
    )
    assert check_repository(repo, read_data=True) == []
    # And we can add to a restic-made repository, which restic still accepts.
    write_sample(repo, {"added": b"by shadowvault"}, time_ns=1_800_000_000_000_000_000, tags=["sv"])
    assert "no errors were found" in restic(path, "check", "--read-data").stdout


def test_flipped_byte_is_reported_naming_pack_and_blob(tmp_path: Path) -> None:
    path = tmp_path / "victim"
    repo = Repository.init(LocalBackend(path), PASSWORD, kdf=FAST_KDF)
    write_sample(repo, {"doc": os.urandom(3000)}, time_ns=1, tags=[])
    repo = Repository.open(LocalBackend(path), PASSWORD)
    repo.load_index()
    data_packs = [pid for pid in repo.index.pack_ids() if repo.index.pack_blobs(pid)[0].type is BlobType.DATA]
    (pack_id,) = data_packs
    (blob,) = repo.index.pack_blobs(pack_id)
    assert check_repository(repo, read_data=True) == []
    pack_path = path / "data" / pack_id.hex()[:2] / pack_id.hex()
    pack_path.chmod(0o600)
    raw = bytearray(pack_path.read_bytes())
    raw[blob.offset + 100] ^= 0x01
    pack_path.write_bytes(bytes(raw))
    # Structure is intact, so only reading the data finds it.
    assert check_repository(repo, read_data=False) == []
    problems = check_repository(repo, read_data=True)
    kinds = {p.kind for p in problems}
    assert kinds == {"pack_hash", "bad_blob"}
    bad = next(p for p in problems if p.kind == "bad_blob")
    assert bad.pack_id == pack_id.hex() and bad.blob_id == blob.id.hex()
    assert pack_id.hex() in bad.message and blob.id.hex() in bad.message


def test_missing_pack_and_missing_blob_are_reported(tmp_path: Path) -> None:
    path = tmp_path / "holes"
    repo = Repository.init(LocalBackend(path), PASSWORD, kdf=FAST_KDF)
    write_sample(repo, {"doc": os.urandom(3000)}, time_ns=1, tags=[])
    repo.load_index()
    (pack_id,) = [p for p in repo.index.pack_ids() if repo.index.pack_blobs(p)[0].type is BlobType.DATA]
    LocalBackend(path).remove(FileType.PACK, pack_id.hex())
    problems = check_repository(Repository.open(LocalBackend(path), PASSWORD), read_data=True)
    assert [p.kind for p in problems] == ["missing_pack"]
    assert problems[0].pack_id == pack_id.hex()


def test_interrupted_session_leaves_a_repository_restic_accepts(tmp_path: Path, restic_bin: str) -> None:
    path = tmp_path / "interrupted"
    repo = Repository.init(LocalBackend(path), PASSWORD, kdf=FAST_KDF, pack_size=4096)
    write_sample(repo, {"kept": b"committed"}, time_ns=1, tags=[])
    # A pack reaches the backend, then the process "dies" before index and snapshot.
    for _ in range(3):
        repo.save_blob(BlobType.DATA, os.urandom(5000))
    repo.close()
    result = restic(path, "check", "--read-data")
    assert "no errors were found" in result.stdout and "not referenced in any index" in result.stdout
    reopened = Repository.open(LocalBackend(path), PASSWORD)
    assert check_repository(reopened, read_data=True) == []
    hints = check_repository(reopened, read_data=True, include_hints=True)
    assert len(hints) == 3 and {h.kind for h in hints} == {"unindexed_pack"}
    assert not any(h.critical for h in hints)


def test_restic_v1_repository_opens_and_accepts_our_writes(tmp_path: Path, restic_bin: str) -> None:
    path = tmp_path / "v1"
    restic(path, "init", "--repository-version", "1")
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_bytes(b"version one" * 100)
    restic(path, "backup", str(src))
    repo = Repository.open(LocalBackend(path), PASSWORD)
    assert repo.version == 1
    assert check_repository(repo, read_data=True) == []
    write_sample(repo, {"n": bytes(5000)}, time_ns=2, tags=["v1"])
    # Version 1 forbids compressed blobs; restic would reject them.
    assert all(
        b.uncompressed_length is None for pid in repo.index.pack_ids() for b in repo.index.pack_blobs(pid)
    )
    assert "no errors were found" in restic(path, "check", "--read-data").stdout


def test_damaged_index_file_is_reported_not_fatal(tmp_path: Path) -> None:
    path = tmp_path / "badindex"
    repo = Repository.init(LocalBackend(path), PASSWORD, kdf=FAST_KDF)
    write_sample(repo, {"doc": b"text"}, time_ns=1, tags=[])
    (index_file,) = (path / "index").iterdir()
    index_file.chmod(0o600)
    raw = bytearray(index_file.read_bytes())
    raw[20] ^= 0xFF
    index_file.write_bytes(bytes(raw))
    fresh = Repository.open(LocalBackend(path), PASSWORD)
    with pytest.raises(IntegrityError, match=index_file.name[:8]):
        fresh.load_index()
    problems = check_repository(Repository.open(LocalBackend(path), PASSWORD))
    kinds = [p.kind for p in problems]
    assert kinds[0] == "bad_index" and "missing_tree" in kinds
