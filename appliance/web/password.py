"""The admin password: a memory-hard hash (scrypt) in one small file, never the password itself.

Why scrypt from the standard library rather than argon2id (argon2-cffi): both are memory-hard and
OWASP lists both; scrypt comes with Python (OpenSSL), so the box gains no native dependency (and
the board's aarch64 lock no new wheel) for a login that happens a few times a day. The cost is
N=2^15, r=8, p=3, one of the settings OWASP's Password Storage Cheat Sheet lists as equivalent
to its N=2^17, r=8, p=1 minimum, with a quarter of the memory (32 MiB, on a box that keeps
its models resident). A check takes about a second here (see bench/status_page.py), which
also slows guessing. The parameters are stored with the hash, so they can be raised later
without breaking the password already set.

The file (`PathSettings.admin_password`) is JSON, mode 0600, replaced atomically.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Final

__all__ = ["DEFAULT_COST", "MIN_LENGTH", "Cost", "PasswordRecord", "load_password", "save_password"]

MIN_LENGTH: Final = 8


@dataclass(frozen=True, slots=True)
class Cost:
    """scrypt's parameters: memory is 128 * r * n bytes; the work grows with n * r * p."""

    n: int
    r: int
    p: int

    @property
    def memory(self) -> int:
        return 128 * self.r * self.n


DEFAULT_COST: Final = Cost(n=2**15, r=8, p=3)


@dataclass(frozen=True, slots=True)
class PasswordRecord:
    cost: Cost
    salt: bytes
    digest: bytes

    @classmethod
    def create(cls, password: str, cost: Cost = DEFAULT_COST) -> PasswordRecord:
        """Hash a new password (seconds of CPU: call it off the event loop)."""
        if len(password) < MIN_LENGTH:
            raise ValueError(f"the password needs at least {MIN_LENGTH} characters")
        salt = secrets.token_bytes(16)
        return cls(cost=cost, salt=salt, digest=_scrypt(password, salt, cost))

    def matches(self, password: str) -> bool:
        """Whether `password` is this one (seconds of CPU: call it off the event loop)."""
        return hmac.compare_digest(_scrypt(password, self.salt, self.cost), self.digest)

    @property
    def fingerprint(self) -> str:
        """Changes whenever the password is set again (sessions opened before end with it)."""
        return hashlib.sha256(self.salt + self.digest).hexdigest()[:16]

    def to_json(self) -> str:
        return json.dumps(
            {
                "kdf": "scrypt",
                "n": self.cost.n,
                "r": self.cost.r,
                "p": self.cost.p,
                "salt": base64.b64encode(self.salt).decode(),
                "hash": base64.b64encode(self.digest).decode(),
            }
        )

    @classmethod
    def from_json(cls, text: str) -> PasswordRecord:
        found = json.loads(text)
        if found.get("kdf") != "scrypt":
            raise ValueError(f"unknown password hash {found.get('kdf')!r}")
        return cls(
            cost=Cost(n=int(found["n"]), r=int(found["r"]), p=int(found["p"])),
            salt=base64.b64decode(found["salt"]),
            digest=base64.b64decode(found["hash"]),
        )


def _scrypt(password: str, salt: bytes, cost: Cost) -> bytes:
    return hashlib.scrypt(
        password.encode(),
        salt=salt,
        n=cost.n,
        r=cost.r,
        p=cost.p,
        maxmem=2 * cost.memory,
        dklen=32,
    )


def load_password(path: Path) -> PasswordRecord | None:
    """The stored record; None when no password has been set (or the file is unreadable)."""
    try:
        return PasswordRecord.from_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def save_password(path: Path, record: PasswordRecord) -> None:
    """Replace the stored record atomically; only this user may read it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".admin-password-")
    try:
        os.fchmod(handle, 0o600)
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(record.to_json() + "\n")
            stream.flush()
            os.fsync(stream.fileno())
        Path(temporary).replace(path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
