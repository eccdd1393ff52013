"""Crypto against restic's published vectors, plus round trips and tamper detection."""

from __future__ import annotations

import os

import pytest

from shadowvault.repo import crypto
from shadowvault.repo.files import key

# From restic internal/crypto/crypto_int_test.go (originally the Poly1305-AES paper):
# (msg, r, k, nonce, mac)
POLY1305_VECTORS = [
    (
        "f3f6",
        "851fc40c3467ac0be05cc20404f3f700",
        "ec074c835580741701425b623235add6",
        "fb447350c4e868c52ac3275cf9d4327e",
        "f4c633c3044fc145f84f335cb81953de",
    ),
    (
        "",
        "a0f30800 00f46400 d0c7e907 6c834403".replace(" ", ""),
        "75deaa25c09f208e1dc4ce6b5cad3fbf",
        "61ee09218d29b0aaed7e154a2c5509cc",
        "dd3fab2251f11ac759f0887129cc2ee7",
    ),
    (
        "663cea190ffb83d89593f3f476b6bc24d7e679107ea26adb8caf6652d0656136",
        "48443d0bb0d21109c89a100b5ce2c208",
        "6acb5f61a7176dd320c5c1eb2edcdc74",
        "ae212a55399729595dea458bc621ff0e",
        "0ee1c16bb73f0f4fd19881753c01cdbe",
    ),
    (
        "ab0812724a7f1e342742cbed374d94d136c6b8795d45b3819830f2c04491faf0990c62e48b8018b2c3e4a0fa3134cb67"
        "fa83e158c994d961c4cb21095c1bf9",
        "12976a08c4426d0ce8a82407c4f48207",
        "e1a5668a4d5b66a5f68cc5424ed5982d",
        "9ae831e743978d3a23527c7128149e3a",
        "5154ad0d2cb26e01274fc51148491f1b",
    ),
]

# restic internal/crypto/crypto_int_test.go testValues: a known ciphertext.
KNOWN_KEY = crypto.Key(
    bytes.fromhex("303e8687b1d7db18421bdc6bb8588ccadac4d59ee87b8ff70c44e635790cafef"),
    bytes.fromhex("ef4d8824cb80b2bcc5fbff8a9b12a42c"),
    bytes.fromhex("cc8d4b948ee0ebfe1d415de921d10353"),
)
KNOWN_CIPHERTEXT = bytes.fromhex(
    "69fb41c62d12def4593bd71757138606338f621aeaeb39da0fe4f99233f8037a54ea63338a813bcf3f75d8c3cc75dddf8750"
)


@pytest.mark.parametrize(("msg", "r", "k", "nonce", "mac"), POLY1305_VECTORS)
def test_poly1305_aes_vectors(msg: str, r: str, k: str, nonce: str, mac: str) -> None:
    got = crypto.poly1305_aes(bytes.fromhex(msg), bytes.fromhex(nonce), bytes.fromhex(k), bytes.fromhex(r))
    assert got.hex() == mac


def test_known_ciphertext_decrypts() -> None:
    assert crypto.open_(KNOWN_KEY, KNOWN_CIPHERTEXT) == b"Dies ist ein Test!"


def test_known_ciphertext_reencrypts_identically_with_its_iv() -> None:
    iv = KNOWN_CIPHERTEXT[:16]
    assert crypto.seal(KNOWN_KEY, b"Dies ist ein Test!", iv=iv) == KNOWN_CIPHERTEXT


@pytest.mark.parametrize("size", [0, 1, 15, 16, 17, 1000, 1 << 20])
def test_round_trip_and_layout(size: int) -> None:
    k = crypto.Key.random()
    plain = os.urandom(size)
    sealed = crypto.seal(k, plain)
    assert len(sealed) == size + crypto.EXTENSION
    assert crypto.open_(k, sealed) == plain
    # A fresh IV every time: same plaintext, different ciphertext.
    assert crypto.seal(k, plain)[:16] != sealed[:16]


@pytest.mark.parametrize("where", [0, 5, 16 + 5, -8, -1])
def test_any_flipped_byte_is_detected(where: int) -> None:
    k = crypto.Key.random()
    sealed = bytearray(crypto.seal(k, b"some plaintext of moderate length"))
    sealed[where] ^= 0x23
    with pytest.raises(crypto.CiphertextError):
        crypto.open_(k, bytes(sealed))


def test_wrong_key_and_short_input_are_rejected() -> None:
    sealed = crypto.seal(crypto.Key.random(), b"x")
    with pytest.raises(crypto.CiphertextError):
        crypto.open_(crypto.Key.random(), sealed)
    with pytest.raises(crypto.CiphertextError):
        crypto.open_(KNOWN_KEY, b"\x01" * 31)


def test_mask_r_clears_the_poly1305_bits() -> None:
    masked = crypto.mask_r(b"\xff" * 16)
    assert masked.hex() == "ffffff0ffcffff0ffcffff0ffcffff0f"
    assert crypto.mask_r(masked) == masked


def test_master_key_json_round_trip() -> None:
    k = crypto.Key.random()
    assert crypto.Key.from_json(k.to_json()) == k


def test_kdf_is_deterministic_and_password_sensitive() -> None:
    salt = os.urandom(crypto.SALT_SIZE)
    params = crypto.KdfParams(1024, 8, 1)
    assert crypto.kdf(params, salt, "pw") == crypto.kdf(params, salt, "pw")
    assert crypto.kdf(params, salt, "pw") != crypto.kdf(params, salt, "pW")
    with pytest.raises(ValueError):
        crypto.kdf(crypto.KdfParams(1000, 8, 1), salt, "pw")
    with pytest.raises(ValueError):
        crypto.kdf(params, salt[:32], "pw")


def test_key_file_round_trip_and_wrong_password() -> None:
    master = crypto.Key.random()
    kf = key.create(master, "secret", crypto.KdfParams(1024, 8, 1), username="u", hostname="h")
    parsed = key.KeyFile.from_json(kf.to_json())
    assert parsed == kf
    assert key.open_master(parsed, "secret") == master
    with pytest.raises(crypto.CiphertextError):
        key.open_master(parsed, "not the secret")


def test_kdf_matches_the_reference_scrypt_on_both_paths() -> None:
    """hashlib's scrypt (used for its GIL release) agrees with cryptography's, which takes over
    for parameters beyond hashlib's memory limit."""
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    salt = os.urandom(crypto.SALT_SIZE)
    params = crypto.KdfParams(n=1024, r=8, p=2)
    ref = Scrypt(salt=salt, length=64, n=1024, r=8, p=2).derive(b"pw")
    assert crypto.kdf(params, salt, "pw") == crypto.Key.from_kdf_output(ref)
    assert crypto.scrypt64(b"pw", salt, params) == ref
    assert crypto.scrypt64(b"pw", salt, params, hashlib_limit=0) == ref
