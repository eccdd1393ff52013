"""Encode/decode of the on-disk file types: packs, index, config, unpacked framing, trees, snapshots."""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator

import orjson
import pytest
import zstandard

from shadowvault.repo import compression, crypto
from shadowvault.repo.files import jsonfmt, pack
from shadowvault.repo.files.config import RepoConfig, is_irreducible, random_polynomial
from shadowvault.repo.files.index import IndexFile, split_into_files
from shadowvault.repo.files.pack import PackedBlob
from shadowvault.repo.files.snapshot import Snapshot
from shadowvault.repo.files.tree import Node, Tree, go_quote, go_unquote
from shadowvault.repo.ids import BlobType, hash_bytes
from shadowvault.repo.index import IndexEntry, MasterIndex


def _blobs() -> list[PackedBlob]:
    return [
        PackedBlob(BlobType.DATA, hash_bytes(b"a"), 0, 100, None),
        PackedBlob(BlobType.DATA, hash_bytes(b"b"), 100, 50, 400),
        PackedBlob(BlobType.TREE, hash_bytes(b"c"), 150, 7, None),
        PackedBlob(BlobType.TREE, hash_bytes(b"d"), 157, 60, 90),
    ]


def test_pack_header_layout_and_round_trip() -> None:
    blobs = _blobs()
    header = pack.encode_header(blobs)
    assert len(header) == 2 * 37 + 2 * 41
    # type byte, then u32le stored length (and u32le plaintext length when compressed), then id
    assert header[0] == 0 and header[1:5] == (100).to_bytes(4, "little") and header[5:37] == blobs[0].id
    assert header[37] == 2 and header[42:46] == (400).to_bytes(4, "little")
    assert header[78] == 1 and header[115] == 3
    assert pack.decode_header(header) == blobs


def test_sealed_pack_parses_back() -> None:
    k = crypto.Key.random()
    body = bytearray()
    entries = []
    for i in range(5):
        data = crypto.seal(k, os.urandom(i * 10))
        entries.append(PackedBlob(BlobType.DATA, hash_bytes(bytes([i])), len(body), len(data)))
        body += data
    whole = bytes(body) + pack.seal_trailer(k, entries)
    assert len(whole) == pack.expected_pack_size(entries)
    assert pack.parse_pack(k, whole) == entries
    with pytest.raises(ValueError):
        pack.parse_pack(k, whole[1:])  # sizes no longer add up
    with pytest.raises(ValueError):
        pack.decode_header(b"\x07" + bytes(36))


def test_index_file_json_matches_the_design_document_shape() -> None:
    idx = IndexFile([(hash_bytes(b"p"), _blobs())], supersedes=[hash_bytes(b"old")])
    doc = json.loads(idx.to_json())
    assert list(doc) == ["supersedes", "packs"]
    first, second = doc["packs"][0]["blobs"][:2]
    assert first == {"id": hash_bytes(b"a").hex(), "type": "data", "offset": 0, "length": 100}
    assert second["uncompressed_length"] == 400
    assert IndexFile.from_json(idx.to_json()) == idx


def test_legacy_array_index_is_read() -> None:
    raw = json.dumps([{"id": hash_bytes(b"p").hex(), "blobs": []}]).encode()
    assert IndexFile.from_json(raw).packs == [(hash_bytes(b"p"), [])]


def test_master_index_from_json_is_what_the_index_file_holds() -> None:
    p1, p2 = hash_bytes(b"p1"), hash_bytes(b"p2")
    first = IndexFile([(p1, _blobs())]).to_json()
    # The second file names p1 again (a rewrite interrupted after writing it) and puts blob "a"
    # in a second pack too: each blob is listed once per pack, and found in the first pack.
    dup = PackedBlob(BlobType.DATA, hash_bytes(b"a"), 9, 100, None)
    second = IndexFile([(p1, _blobs()[:1]), (p2, [dup])]).to_json()
    index = MasterIndex()
    index.add_index_json(b"i1", first)
    index.add_index_json(b"i2", second)
    assert index.index_files == {b"i1", b"i2"}
    assert index.pack_blobs(p1) == _blobs() and index.pack_blobs(p2) == [dup]
    assert index.lookup(BlobType.DATA, hash_bytes(b"a")) == IndexEntry(p1, _blobs()[0])
    assert index.lookup(BlobType.TREE, hash_bytes(b"d")) == IndexEntry(p1, _blobs()[3])
    assert index.lookup(BlobType.DATA, hash_bytes(b"d")) is None  # the id is only unique with its type
    assert index.has(BlobType.TREE, hash_bytes(b"c")) and not index.has(BlobType.DATA, hash_bytes(b"c"))
    assert index.blob_count() == 4
    twice = MasterIndex()  # a pack naming one blob twice lists it once, as before
    twice.add_index_json(b"i", IndexFile([(p2, [dup, dup])]).to_json())
    assert twice.pack_blobs(p2) == [dup]
    legacy = MasterIndex()
    legacy.add_index_json(b"old", json.dumps(json.loads(first)["packs"]).encode())
    assert legacy.pack_blobs(p1) == _blobs()


@pytest.mark.parametrize(
    "damage",
    [
        lambda b: b.pop("offset"),
        lambda b: b.update(offset="0"),
        lambda b: b.update(length=1.5),
        lambda b: b.update(uncompressed_length="400"),
        lambda b: b.update(id="ab" * 31),
        lambda b: b.update(id="zz" * 32),
        lambda b: b.update(type="index"),
        lambda b: b.update(type=["data"]),
    ],
)
def test_a_malformed_index_file_adds_nothing(damage: object) -> None:
    doc = json.loads(IndexFile([(hash_bytes(b"good"), _blobs()), (hash_bytes(b"bad"), _blobs())]).to_json())
    damage(doc["packs"][1]["blobs"][2])  # type: ignore[operator]
    index = MasterIndex()
    with pytest.raises(ValueError):
        index.add_index_json(b"i", json.dumps(doc).encode())
    assert index.blob_count() == 0 and not index.pack_ids() and not index.index_files


def test_json_documents_orjson_refuses_are_read_as_before() -> None:
    assert jsonfmt.loads(b'{"a":[1,"\\u00e9",null]}') == {"a": [1, "\u00e9", None]}
    assert jsonfmt.loads(b"\xef\xbb\xbf{}") == {}  # a byte order mark
    assert jsonfmt.loads(b'"\\ud800"') == "\ud800"  # an unpaired surrogate escape
    assert jsonfmt.loads(b'{"i":18446744073709551615}') == {"i": 2**64 - 1}
    with pytest.raises(ValueError):
        jsonfmt.loads(b'{"a":')


def test_json_is_written_as_the_standard_library_and_go_write_it() -> None:
    # Every code point (surrogates aside, see below), in a name and as a key.
    text = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF)
    for doc in ({"name": text}, {text[:5000]: 1}):
        assert jsonfmt.dumps(doc) == jsonfmt._dumps_stdlib(doc)
        assert orjson.dumps(doc)  # the fast path wrote it (it raises what it refuses)
    assert jsonfmt.dumps({"n": "<a & b>\u2028\u2029"}) == b'{"n":"\\u003ca \\u0026 b\\u003e\\u2028\\u2029"}'
    doc = {"nodes": [{"name": "f", "type": "file", "size": 2**64 - 1, "inode": -(2**63), "content": None}]}
    assert (
        jsonfmt.dumps(doc)
        == jsonfmt._dumps_stdlib(doc)
        == b'{"nodes":[{"name":"f","type":"file",'
        + (b'"size":18446744073709551615,"inode":-9223372036854775808,"content":null}]}')
    )
    # What orjson refuses is written by the standard library: a lone surrogate (an undecodable
    # file name) becomes U+FFFD as Go writes it, an integer beyond 64 bits is kept exact.
    assert jsonfmt.dumps({"n": "a\udc80"}) == '{"n":"a\ufffd"}'.encode()
    assert jsonfmt.dumps({"big": 2**64}) == b'{"big":18446744073709551616}'


def test_index_split_keeps_each_file_under_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("shadowvault.repo.files.index.MAX_INDEX_JSON", 2000)
    packs = [(hash_bytes(bytes([i])), _blobs()) for i in range(20)]
    files = split_into_files(packs)
    assert len(files) > 1
    assert all(len(f.to_json()) <= 2000 for f in files)
    assert [p for f in files for p in f.packs] == [(pid, list(b)) for pid, b in packs]


def test_unpacked_framing_v2_and_legacy_json() -> None:
    doc = b'{"a":1}'
    v2 = compression.encode_unpacked(doc, 2)
    assert v2[0] == 2 and compression.decode_unpacked(v2) == doc
    assert compression.encode_unpacked(doc, 1) == doc
    assert compression.decode_unpacked(b"[1,2]") == b"[1,2]"
    # restic's zstd writer may omit the frame content size; we must still read it.
    no_size = bytes([2]) + zstandard.ZstdCompressor(write_content_size=False).compress(doc)
    assert compression.decode_unpacked(no_size) == doc
    with pytest.raises(ValueError):
        compression.decode_unpacked(b"\x03junk")


def test_config_polynomials() -> None:
    # Polynomials taken from restic's design document and its chunker tests.
    assert is_irreducible(0x25B468838DCB75)
    assert is_irreducible(0x3DA3358B4DC173)
    # A GF(2) product of two polynomials is reducible.
    a, b = 0b1011, 0x1000000000000B  # degrees 3 and 52
    product = 0
    for i in range(b.bit_length()):
        if b >> i & 1:
            product ^= a << i
    assert not is_irreducible(product)
    pol = random_polynomial()
    assert pol.bit_length() == 54 and is_irreducible(pol)
    cfg = RepoConfig.new()
    assert RepoConfig.from_json(cfg.to_json()) == cfg
    assert json.loads(cfg.to_json())["chunker_polynomial"] == f"{cfg.chunker_polynomial:x}"


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("2014-12-22T14:47:59.912418701+01:00", 1419256079912418701),
        ("2015-01-02T18:10:13.48307196+01:00", 1420218613483071960),
        ("2026-11-25T08:02:08Z", 1795593728000000000),
        ("2026-11-25T03:02:08.5-05:00", 1795593728500000000),
    ],
)
def test_time_parsing_any_offset_any_fraction(text: str, ns: int) -> None:
    assert jsonfmt.parse_time(text) == ns
    assert jsonfmt.parse_time(jsonfmt.format_time(ns)) == ns


def test_time_format_is_go_rfc3339nano() -> None:
    assert jsonfmt.format_time(1795593728500000000, utc=True) == "2026-11-25T08:02:08.5Z"
    assert jsonfmt.format_time(1795593728000000000, utc=True) == "2026-11-25T08:02:08Z"


def test_go_json_escapes() -> None:
    assert jsonfmt.dumps({"a": "<&>", "b": "\udcff"}) == b'{"a":"\\u003c\\u0026\\u003e","b":"\xef\xbf\xbd"}'


# A node as restic 0.14 writes it (keys in struct order, omitempty respected).
RESTIC_TREE = (
    b'{"nodes":[{"name":"rtest","type":"dir","mode":2147484141,"mtime":"2026-11-25T08:02:06.332543849Z",'
    b'"atime":"2026-11-25T08:02:06.332543849Z","ctime":"2026-11-25T08:02:06.332543849Z","uid":0,"gid":0,'
    b'"user":"root","group":"root","inode":2146670,"device_id":65024,"content":null,'
    b'"subtree":"62097972518440f1cadddf2421406f4a929a90392ec842112c7905879b2dab19"}]}\n'
)


@contextlib.contextmanager
def local_zone(tz: str) -> Iterator[None]:
    """Run with the process's local time zone set to a POSIX TZ string."""
    old = os.environ.get("TZ")
    os.environ["TZ"] = tz
    time.tzset()
    try:
        yield
    finally:
        if old is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = old
        time.tzset()


def test_restic_tree_reencodes_byte_for_byte() -> None:
    with local_zone("UTC0"):
        tree = Tree.from_json(RESTIC_TREE)
        assert tree.nodes[0].subtree is not None and tree.nodes[0].content is None
        assert tree.to_json() == RESTIC_TREE


def test_times_carry_the_local_offset_like_restic() -> None:
    # The design document's example timestamp, written in a UTC+1 zone.
    ns = jsonfmt.parse_time("2014-12-22T14:47:59.912418701+01:00")
    with local_zone("CET-1"):
        assert jsonfmt.format_time(ns) == "2014-12-22T14:47:59.912418701+01:00"
    with local_zone("EST5"):
        assert jsonfmt.format_time(ns) == "2014-12-22T08:47:59.912418701-05:00"


def test_node_omits_empty_fields_and_keeps_extra_last() -> None:
    node = Node(name="f", type="file", content=[], extra={"shadowvault": {"class": "suspect"}})
    d = node.to_dict()
    assert list(d) == ["name", "type", "mtime", "atime", "ctime", "uid", "gid", "content", "shadowvault"]
    assert d["content"] == []
    again = Node.from_dict(json.loads(jsonfmt.dumps(d)))
    assert again == node


def test_unknown_keys_survive_a_round_trip() -> None:
    raw = json.loads(RESTIC_TREE)
    raw["nodes"][0]["generic_attributes"] = {"windows.attrs": "AQ=="}
    tree = Tree.from_json(json.dumps(raw).encode())
    assert tree.nodes[0].extra == {"generic_attributes": {"windows.attrs": "AQ=="}}
    assert json.loads(tree.to_json())["nodes"][0]["generic_attributes"] == {"windows.attrs": "AQ=="}


@pytest.mark.parametrize(
    ("raw", "quoted"),
    [
        (b"plain", "plain"),
        (b'a"b\\c', 'a\\"b\\\\c'),
        (b"tab\there\n", "tab\\there\\n"),
        (b"\xff\xfe", "\\xff\\xfe"),
        ("naïve ✓".encode(), "naïve ✓"),
        (b"\x01\x7f", "\\x01\\x7f"),
        ("\u200b".encode(), "\\u200b"),
    ],
)
def test_names_are_quoted_like_go_strconv(raw: bytes, quoted: str) -> None:
    assert go_quote(raw) == quoted
    assert go_unquote(quoted) == raw


def test_non_utf8_names_and_link_targets_are_lossless() -> None:
    name = os.fsdecode(b"caf\xe9 \xff")
    node = Node(name=name, type="symlink", linktarget=os.fsdecode(b"/target/\xfe"))
    d = json.loads(jsonfmt.dumps(node.to_dict()))
    assert d["name"] == "caf\\xe9 \\xff"
    assert d["linktarget_raw"] == "L3RhcmdldC/+"
    back = Node.from_dict(d)
    assert os.fsencode(back.name) == b"caf\xe9 \xff"
    assert os.fsencode(back.linktarget) == b"/target/\xfe"


def test_tree_sorts_by_name_bytes() -> None:
    names = ["b", "a", "B", "é", os.fsdecode(b"\xff")]
    tree = Tree([Node(name=n, type="file", content=[]) for n in names])
    order = [go_unquote(n["name"]) for n in json.loads(tree.to_json())["nodes"]]
    assert order == sorted(os.fsencode(n) for n in names)


def test_extended_attributes_are_base64() -> None:
    node = Node(name="x", type="file", content=[], extended_attributes=[("user.k", b"\x00v")])
    d = node.to_dict()
    assert d["extended_attributes"] == [{"name": "user.k", "value": "AHY="}]
    assert Node.from_dict(d).extended_attributes == [("user.k", b"\x00v")]


def test_snapshot_field_order_and_extra() -> None:
    snap = Snapshot(
        time=1795593728465518274,
        tree=hash_bytes(b"t"),
        paths=["/a"],
        hostname="h",
        username="u",
        tags=["x"],
        parent="ab" * 32,
        program_version="shadowvault 0.1.0",
        extra={"summary": {"files_new": 3}},
    )
    doc = json.loads(snap.to_json())
    assert list(doc) == [
        "time",
        "parent",
        "tree",
        "paths",
        "hostname",
        "username",
        "tags",
        "program_version",
        "summary",
    ]
    assert Snapshot.from_json(snap.to_json()) == snap


@pytest.mark.parametrize("content_size", [True, False])
def test_blob_decompression_with_known_length(content_size: bool) -> None:
    """The one-call path for blobs agrees with the streaming one, with or without the frame's size."""
    data = os.urandom(1000) * 300
    frame = zstandard.ZstdCompressor(write_content_size=content_size).compress(data)
    assert compression.decompress(frame, len(data)) == data
    assert compression.decompress(frame) == data


def test_blob_decompression_falls_back_for_several_frames_and_rejects_wrong_lengths() -> None:
    first, second = b"abc" * 1000, b"xyz" * 10
    comp = zstandard.ZstdCompressor()
    two = comp.compress(first) + comp.compress(second)
    assert compression.decompress(two, len(first) + len(second)) == first + second
    with pytest.raises(ValueError, match="expected 5"):
        compression.decompress(comp.compress(first), 5)
    with pytest.raises(ValueError, match="corrupt"):
        compression.decompress(b"\x28\xb5\x2f\xfd" + os.urandom(40), 100)
    # A damaged header declaring 2**50 bytes (random bytes did so now and then: the
    # one-shot decoder allocated the declared size and raised MemoryError).
    huge = b"\x28\xb5\x2f\xfd\xe0" + (2**50).to_bytes(8, "little") + bytes(range(40))
    for expected in (100, None):
        with pytest.raises(ValueError, match="corrupt"):
            compression.decompress(huge, expected)
