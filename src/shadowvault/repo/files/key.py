"""Key files (``keys/<id>``): plain JSON holding scrypt parameters and the encrypted master key.

The password and the stored salt/N/r/p give a user key via scrypt; the user key
opens ``data`` (``IV || CIPHERTEXT || MAC``, base64), whose plaintext is the
master key JSON. A repository may hold several key files, one per password.
"""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass

from shadowvault.repo import crypto
from shadowvault.repo.files import jsonfmt


@dataclass(frozen=True)
class KeyFile:
    """Decoded key file. ``created`` is nanoseconds since the epoch."""

    created: int
    username: str
    hostname: str
    kdf: str
    n: int
    r: int
    p: int
    salt: bytes
    data: bytes

    def to_json(self) -> bytes:
        """JSON in restic's field order."""
        return jsonfmt.dumps(
            {
                "created": jsonfmt.format_time(self.created),
                "username": self.username,
                "hostname": self.hostname,
                "kdf": self.kdf,
                "N": self.n,
                "r": self.r,
                "p": self.p,
                "salt": base64.b64encode(self.salt).decode("ascii"),
                "data": base64.b64encode(self.data).decode("ascii"),
            }
        )

    @classmethod
    def from_json(cls, raw: bytes) -> KeyFile:
        """Parse a key file; ``ValueError`` when it is not a well-formed key file."""
        doc = jsonfmt.loads(raw)
        if not isinstance(doc, dict):
            raise ValueError("key file is not a JSON object")
        try:
            return cls(
                created=jsonfmt.parse_time(doc.get("created") or "0001-01-01T00:00:00Z"),
                username=str(doc.get("username", "")),
                hostname=str(doc.get("hostname", "")),
                kdf=str(doc["kdf"]),
                n=int(doc["N"]),
                r=int(doc["r"]),
                p=int(doc["p"]),
                salt=base64.b64decode(doc["salt"], validate=True),
                data=base64.b64decode(doc["data"], validate=True),
            )
        except (KeyError, TypeError, binascii.Error) as exc:
            raise ValueError(f"key file field missing or malformed: {exc}") from exc

    @property
    def params(self) -> crypto.KdfParams:
        """The scrypt parameters."""
        return crypto.KdfParams(self.n, self.r, self.p)


def create(
    master: crypto.Key,
    password: str,
    params: crypto.KdfParams,
    *,
    username: str,
    hostname: str,
    created: int | None = None,
) -> KeyFile:
    """A new key file that opens ``master`` with ``password``."""
    salt = os.urandom(crypto.SALT_SIZE)
    user_key = crypto.kdf(params, salt, password)
    return KeyFile(
        created=jsonfmt.now_ns() if created is None else created,
        username=username,
        hostname=hostname,
        kdf="scrypt",
        n=params.n,
        r=params.r,
        p=params.p,
        salt=salt,
        data=crypto.seal(user_key, master.to_json()),
    )


def open_master(key_file: KeyFile, password: str) -> crypto.Key:
    """Decrypt the master key.

    ``crypto.CiphertextError`` when the password is wrong (the MAC does not
    verify); ``ValueError`` when the file is unusable (unknown KDF, bad
    parameters, undecodable master key).
    """
    if key_file.kdf != "scrypt":
        raise ValueError(f"unsupported KDF {key_file.kdf!r}")
    user_key = crypto.kdf(key_file.params, key_file.salt, password)
    master = crypto.Key.from_json(crypto.open_(user_key, key_file.data))
    if not master.valid():
        raise ValueError("master key is all zero")
    return master
