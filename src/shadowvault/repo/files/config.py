"""The repository ``config`` file: format version, repository id, chunker polynomial.

The polynomial is restic's Rabin-fingerprint parameter: a random irreducible
polynomial of degree 53 over GF(2), stored as a hex string. restic refuses a
config whose polynomial is reducible, so we create proper ones even though our
own chunker (FastCDC) does not use it.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from typing import Any

from shadowvault.repo.files import jsonfmt

MIN_VERSION = 1
MAX_VERSION = 2
POLYNOMIAL_DEGREE = 53


@dataclass(frozen=True)
class RepoConfig:
    """Decoded ``config``: ``version`` (1 or 2), ``id`` (64 hex digits), ``chunker_polynomial``."""

    version: int
    id: str
    chunker_polynomial: int

    @classmethod
    def new(cls, version: int = MAX_VERSION) -> RepoConfig:
        """A fresh config with a random id and a random irreducible polynomial."""
        return cls(version, os.urandom(32).hex(), random_polynomial())

    def to_dict(self) -> dict[str, Any]:
        """The JSON document as restic writes it."""
        return {
            "version": self.version,
            "id": self.id,
            "chunker_polynomial": f"{self.chunker_polynomial:x}",
        }

    def to_json(self) -> bytes:
        """Compact JSON bytes."""
        return jsonfmt.dumps(self.to_dict())

    @classmethod
    def from_json(cls, data: bytes) -> RepoConfig:
        """Parse ``config`` JSON; ``ValueError`` when a field is missing or malformed.

        The version is not range-checked here: the caller decides what it supports.
        """
        doc = jsonfmt.loads(data)
        if not isinstance(doc, dict):
            raise ValueError("config is not a JSON object")
        try:
            version = doc["version"]
            repo_id = doc["id"]
            pol = int(doc["chunker_polynomial"], 16)
        except (KeyError, TypeError) as exc:
            raise ValueError(f"config lacks a valid field: {exc}") from exc
        if not isinstance(version, int) or not isinstance(repo_id, str):
            raise ValueError("config version or id has the wrong type")
        return cls(version, repo_id, pol)


def _deg(p: int) -> int:
    return p.bit_length() - 1


def _mod(a: int, m: int) -> int:
    dm = _deg(m)
    while a and _deg(a) >= dm:
        a ^= m << (_deg(a) - dm)
    return a


def _mulmod(a: int, b: int, m: int) -> int:
    result = 0
    a = _mod(a, m)
    while b:
        if b & 1:
            result ^= a
        b >>= 1
        a = _mod(a << 1, m)
    return _mod(result, m)


def _gcd(a: int, b: int) -> int:
    while b:
        a, b = b, _mod(a, b)
    return a


def is_irreducible(f: int) -> bool:
    """Ben-Or's test: ``gcd(x^(2^i) - x mod f, f) == 1`` for every i up to deg(f)/2."""
    if f < 2:
        return False
    x = 0b10
    power = x  # x^(2^0)
    for _ in range(_deg(f) // 2):
        power = _mulmod(power, power, f)
        if _gcd(_mod(power ^ x, f), f) != 1:
            return False
    return True


def random_polynomial() -> int:
    """A random irreducible polynomial of degree 53 (highest and lowest bit set)."""
    while True:
        f = secrets.randbits(POLYNOMIAL_DEGREE + 1) | (1 << POLYNOMIAL_DEGREE) | 1
        if is_irreducible(f):
            return f
