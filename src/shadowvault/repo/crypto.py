"""restic's authenticated encryption: AES-256-CTR + Poly1305-AES, and the scrypt KDF.

Every encrypted object is ``IV || CIPHERTEXT || MAC`` (16 + n + 16 bytes). The
16-byte IV is random, used both as the CTR counter block and as the Poly1305-AES
nonce. The MAC key is ``k`` (AES-128 key) and ``r`` (Poly1305 multiplier); the
one-time Poly1305 key is ``masked r || AES-128_k(nonce)``. The MAC covers the
ciphertext only. Bytes in, bytes out: no files and no backends here.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import threading
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.ciphers import Cipher, CipherContext, algorithms, modes
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from cryptography.hazmat.primitives.poly1305 import Poly1305

from shadowvault import kdfcache
from shadowvault.errors import IntegrityError

IV_SIZE = 16
MAC_SIZE = 16
EXTENSION = IV_SIZE + MAC_SIZE
"""Bytes an encrypted object is longer than its plaintext."""

SALT_SIZE = 64
"""restic refuses any other salt length in key files."""

# Poly1305 "clamping" from Bernstein's paper: top four bits of r[3], r[7],
# r[11], r[15] and bottom two bits of r[4], r[8], r[12] must be clear.
_R_MASK = bytes(
    [0xFF, 0xFF, 0xFF, 0x0F, 0xFC, 0xFF, 0xFF, 0x0F, 0xFC, 0xFF, 0xFF, 0x0F, 0xFC, 0xFF, 0xFF, 0x0F]
)


class CiphertextError(IntegrityError):
    """The MAC of an encrypted object did not verify (wrong key or corrupted bytes)."""


@dataclass(frozen=True)
class Key:
    """A restic key: 32-byte AES-256 encryption key plus the Poly1305-AES MAC key (k, r)."""

    encrypt: bytes
    mac_k: bytes
    mac_r: bytes
    # Per-key state reused by every seal/open: building AES key schedules and
    # clamping r once per key instead of once per blob roughly halves the cost
    # of small blobs. Excluded from equality and repr (derived, not identity).
    _aes: algorithms.AES = field(init=False, repr=False, compare=False)
    _masked_r: bytes = field(init=False, repr=False, compare=False)
    _ecb: threading.local = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.encrypt) != 32 or len(self.mac_k) != 16 or len(self.mac_r) != 16:
            raise ValueError("key parts must be 32, 16 and 16 bytes long")
        # frozen=True forbids plain assignment; these are caches, not fields.
        object.__setattr__(self, "_aes", algorithms.AES(self.encrypt))
        object.__setattr__(self, "_masked_r", mask_r(self.mac_r))
        object.__setattr__(self, "_ecb", threading.local())

    def mac_nonce_key(self, nonce: bytes) -> bytes:
        """The one-time Poly1305 key for ``nonce``: masked r || AES-128_k(nonce)."""
        # A cipher context is not safe to share between threads, so each thread
        # keeps its own ECB encryptor; ECB carries no state from block to block,
        # so one encryptor serves every nonce without finalize().
        enc: CipherContext | None = getattr(self._ecb, "enc", None)
        if enc is None:
            enc = Cipher(algorithms.AES(self.mac_k), modes.ECB()).encryptor()
            self._ecb.enc = enc
        return self._masked_r + enc.update(nonce)

    def ctr(self, iv: bytes, data: bytes | bytearray | memoryview) -> bytes:
        """AES-256-CTR of ``data`` with ``iv`` as the initial counter block (encrypts and decrypts)."""
        # CTR is a stream mode: finalize() returns nothing, so update() alone is
        # the whole output and no concatenation copy is needed.
        return Cipher(self._aes, modes.CTR(iv)).encryptor().update(data)

    @classmethod
    def random(cls) -> Key:
        """A fresh random master key."""
        return cls(os.urandom(32), os.urandom(16), os.urandom(16))

    @classmethod
    def from_kdf_output(cls, raw: bytes) -> Key:
        """Split 64 KDF bytes: 32 encryption key, then 16 ``k``, then 16 ``r``."""
        if len(raw) != 64:
            raise ValueError("KDF output must be 64 bytes")
        return cls(raw[:32], raw[32:48], raw[48:64])

    def valid(self) -> bool:
        """restic rejects all-zero keys; so do we."""
        return any(self.encrypt) and any(self.mac_k) and any(self.mac_r)

    def to_json(self) -> bytes:
        """The master key JSON stored (encrypted) inside a key file."""
        doc = {
            "mac": {"k": _b64(self.mac_k), "r": _b64(self.mac_r)},
            "encrypt": _b64(self.encrypt),
        }
        return json.dumps(doc, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Key:
        """Parse master key JSON; ``ValueError`` when fields are missing or mis-sized."""
        doc = json.loads(data)
        try:
            return cls(
                base64.b64decode(doc["encrypt"]),
                base64.b64decode(doc["mac"]["k"]),
                base64.b64decode(doc["mac"]["r"]),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"master key JSON lacks a field: {exc}") from exc


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def mask_r(r: bytes) -> bytes:
    """Clamp the Poly1305 multiplier ``r`` as the Poly1305-AES paper requires."""
    return bytes(a & b for a, b in zip(r, _R_MASK, strict=True))


def poly1305_aes(msg: bytes | memoryview, nonce: bytes, k: bytes, r: bytes) -> bytes:
    """Poly1305-AES MAC of ``msg``: one-time key = masked r || AES-128_k(nonce)."""
    enc = Cipher(algorithms.AES(k), modes.ECB()).encryptor()
    s = enc.update(nonce) + enc.finalize()
    return Poly1305.generate_tag(mask_r(r) + s, msg)


def seal(key: Key, plaintext: bytes | bytearray | memoryview, iv: bytes | None = None) -> bytes:
    """Encrypt and authenticate: returns ``IV || CIPHERTEXT || MAC``.

    ``iv`` is only for known-answer tests; normal callers let a random one be chosen.
    """
    if iv is None:
        iv = os.urandom(IV_SIZE)
    if len(iv) != IV_SIZE or not any(iv):
        raise ValueError("IV must be 16 bytes and not all zero")
    ct = key.ctr(iv, plaintext)
    # One join copies the ciphertext once; iv + ct + mac would copy it twice.
    return b"".join((iv, ct, Poly1305.generate_tag(key.mac_nonce_key(iv), ct)))


def open_(key: Key, data: bytes | bytearray | memoryview) -> bytes:
    """Verify the MAC, then decrypt ``IV || CIPHERTEXT || MAC``; ``CiphertextError`` on mismatch."""
    view = memoryview(data)
    if len(view) < EXTENSION:
        raise CiphertextError("encrypted object is shorter than IV + MAC")
    iv = bytes(view[:IV_SIZE])
    ct = view[IV_SIZE:-MAC_SIZE]
    mac = bytes(view[-MAC_SIZE:])
    if not any(iv):
        raise CiphertextError("encrypted object has an all-zero IV")
    try:
        Poly1305.verify_tag(key.mac_nonce_key(iv), ct, mac)
    except InvalidSignature:
        raise CiphertextError("ciphertext verification failed (wrong key or corrupted data)") from None
    return key.ctr(iv, ct)


def plaintext_length(ciphertext_length: int) -> int:
    """Plaintext size of an encrypted object of the given stored size."""
    return ciphertext_length - EXTENSION


@dataclass(frozen=True)
class KdfParams:
    """scrypt cost parameters as stored in a key file (N must be a power of two > 1)."""

    n: int = 32768
    r: int = 8
    p: int = 4

    def check(self) -> None:
        """``ValueError`` for parameters restic would reject."""
        if self.n <= 1 or self.n & (self.n - 1):
            raise ValueError(f"scrypt N={self.n} is not a power of two greater than 1")
        if self.r < 1 or self.p < 1 or self.r * self.p >= 1 << 30:
            raise ValueError(f"scrypt r={self.r}, p={self.p} are out of range")


def kdf(params: KdfParams, salt: bytes, password: str | bytes) -> Key:
    """Derive the user key from a password with scrypt (64 bytes: encrypt || k || r)."""
    params.check()
    if len(salt) != SALT_SIZE:
        raise ValueError(f"salt must be {SALT_SIZE} bytes, got {len(salt)}")
    pw = password.encode() if isinstance(password, str) else password
    early = kdfcache.take(pw, salt, params.n, params.r, params.p)
    return Key.from_kdf_output(early if early is not None else scrypt64(pw, salt, params))


def scrypt64(
    password: bytes, salt: bytes, params: KdfParams, *, hashlib_limit: int = kdfcache.HASHLIB_LIMIT
) -> bytes:
    """64 bytes of scrypt output.

    hashlib's scrypt (OpenSSL) releases the GIL, so the session's other threads (the sources'
    metadata pre-warm) make progress during the ~0.3 s derivation; cryptography's holds it.
    hashlib refuses a memory limit of ``hashlib_limit`` or more, so keys made elsewhere with huge
    parameters go to cryptography's implementation.
    """
    n, r, p = params.n, params.r, params.p
    maxmem = kdfcache.maxmem_for(n, r, p)
    if maxmem < hashlib_limit:
        return hashlib.scrypt(password, salt=salt, n=n, r=r, p=p, maxmem=maxmem, dklen=64)
    return Scrypt(salt=salt, length=64, n=n, r=r, p=p).derive(password)
