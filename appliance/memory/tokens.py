"""OAuth tokens at rest: one row per account, sealed with AES-GCM under `TOKEN_ENCRYPTION_KEY`.

A token in the database is a password to the business's calendar, so it is never written in the
clear: with no key set, `put` refuses (`TokenKeyMissing`, which says how to make one). Each row
is the JSON of the tokens, sealed with a fresh 96-bit nonce and the row's name as associated
data (a sealed row copied under another name does not open). `key_id` is a digest of the key
that sealed the row, so a wrong key is told apart from a damaged row.

Rotation: put the new key in `TOKEN_ENCRYPTION_KEY` and the old one in
`TOKEN_ENCRYPTION_KEY_OLD`. A row the old key sealed is sealed again under the new key when it is
next read; `appliance tokens rotate` does every row at once, in one transaction. Then the old key
can go.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from collections.abc import Callable
from typing import Any

import apsw
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from appliance.memory.db import Database

__all__ = [
    "NEW_KEY_HINT",
    "TokenKey",
    "TokenKeyError",
    "TokenKeyMissing",
    "TokenStore",
    "rotate_tokens",
]

NEW_KEY_HINT = (
    "make one with `appliance tokens new-key` and set TOKEN_ENCRYPTION_KEY to it in the "
    "appliance's settings (/etc/tel3sis/appliance.env), then restart the appliance"
)
_KEY_BYTES = 32
_NONCE_BYTES = 12


class TokenKeyError(Exception):
    """The tokens cannot be sealed or opened with the key given; the message says what to do."""


class TokenKeyMissing(TokenKeyError):
    """No TOKEN_ENCRYPTION_KEY is set, so no token is stored."""


class TokenKey:
    """A 256-bit AES-GCM key, written as 32 bytes of URL-safe base64."""

    def __init__(self, written: str) -> None:
        try:
            raw = base64.urlsafe_b64decode(written.strip().encode("ascii"))
        except (binascii.Error, UnicodeEncodeError, ValueError):
            raw = b""
        if len(raw) != _KEY_BYTES:
            raise TokenKeyError(
                f"TOKEN_ENCRYPTION_KEY must be {_KEY_BYTES} bytes in URL-safe base64 (44 "
                f"characters); {NEW_KEY_HINT}"
            )
        self._aead = AESGCM(raw)
        self.id = hashlib.sha256(b"tel3sis-token-key\0" + raw).hexdigest()[:16]
        """Names the key in the database without revealing it."""

    @staticmethod
    def new() -> str:
        """A fresh random key, as it is written in the settings."""
        return base64.urlsafe_b64encode(os.urandom(_KEY_BYTES)).decode("ascii")

    @classmethod
    def given(cls, written: str | None) -> TokenKey | None:
        return cls(written) if written else None

    def seal(self, name: str, value: dict[str, Any]) -> tuple[bytes, bytes]:
        nonce = os.urandom(_NONCE_BYTES)
        plain = json.dumps(value, sort_keys=True).encode()
        return nonce, self._aead.encrypt(nonce, plain, name.encode())

    def open(self, name: str, nonce: bytes, sealed: bytes) -> dict[str, Any]:
        try:
            plain = self._aead.decrypt(nonce, sealed, name.encode())
        except InvalidTag:
            raise TokenKeyError(
                f"the stored tokens for {name} do not open with TOKEN_ENCRYPTION_KEY (damaged); "
                "connect the account again"
            ) from None
        value = json.loads(plain)
        assert isinstance(value, dict)
        return value


def _read(
    conn: apsw.Connection, name: str, key: TokenKey | None, old: TokenKey | None, at: float
) -> dict[str, Any] | None:
    """The row opened; one the old key sealed is sealed again under the new key first."""
    row = conn.execute(
        "SELECT key_id, nonce, sealed FROM sealed_tokens WHERE name = ?", (name,)
    ).fetchone()
    if row is None:
        return None
    key_id, nonce, sealed = row
    assert isinstance(nonce, bytes) and isinstance(sealed, bytes)
    if key is None:
        raise TokenKeyMissing(
            f"TOKEN_ENCRYPTION_KEY is not set, so the {name} tokens cannot be "
            f"read; set the key they were sealed with, or {NEW_KEY_HINT} and "
            "connect the account again"
        )
    if old is not None and key_id == old.id and key_id != key.id:
        value = old.open(name, nonce, sealed)
        _write(conn, name, value, key, at)
        return value
    if key_id != key.id:
        raise TokenKeyError(
            f"the {name} tokens were sealed with another key than TOKEN_ENCRYPTION_KEY; put "
            "that key in TOKEN_ENCRYPTION_KEY_OLD and run `appliance tokens rotate`"
        )
    return key.open(name, nonce, sealed)


def _write(
    conn: apsw.Connection, name: str, value: dict[str, Any], key: TokenKey, at: float
) -> None:
    nonce, sealed = key.seal(name, value)
    with conn:
        conn.execute(
            "INSERT INTO sealed_tokens(name, key_id, nonce, sealed, updated) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET key_id = excluded.key_id, "
            "nonce = excluded.nonce, sealed = excluded.sealed, updated = excluded.updated",
            (name, key.id, nonce, sealed, at),
        )


def _delete(conn: apsw.Connection, name: str) -> None:
    with conn:
        conn.execute("DELETE FROM sealed_tokens WHERE name = ?", (name,))


def rotate_tokens(conn: apsw.Connection, old: TokenKey, new: TokenKey, at: float) -> int:
    """Seal again under `new` every row `old` sealed, in one transaction; returns how many."""
    rows = conn.execute(
        "SELECT name, nonce, sealed FROM sealed_tokens WHERE key_id = ?", (old.id,)
    ).fetchall()
    with conn:
        for name, nonce, sealed in rows:
            assert isinstance(name, str) and isinstance(nonce, bytes) and isinstance(sealed, bytes)
            _write(conn, name, old.open(name, nonce, sealed), new, at)
    return len(rows)


class TokenStore:
    """Sealed tokens by name ("google"), on the appliance's database."""

    def __init__(
        self,
        db: Database,
        key: TokenKey | None,
        *,
        wall: Callable[[], float],
        old_key: TokenKey | None = None,
    ) -> None:
        self._db = db
        self._key = key
        self._old = old_key
        self._wall = wall

    async def get(self, name: str) -> dict[str, Any] | None:
        """The tokens stored under `name`, or None; raises TokenKeyError when they cannot be
        opened with the key."""
        return await self._db.run(_read, name, self._key, self._old, self._wall())

    async def put(self, name: str, value: dict[str, Any]) -> None:
        """Seal and store; raises TokenKeyMissing without a key (never stored in the clear)."""
        if self._key is None:
            raise TokenKeyMissing(
                f"TOKEN_ENCRYPTION_KEY is not set: tokens are never stored "
                f"unencrypted; {NEW_KEY_HINT}"
            )
        await self._db.run(_write, name, value, self._key, self._wall())

    async def delete(self, name: str) -> None:
        await self._db.run(_delete, name)

    async def rotate(self) -> int:
        """Re-seal what TOKEN_ENCRYPTION_KEY_OLD sealed under TOKEN_ENCRYPTION_KEY (0 when
        either is not set)."""
        if self._old is None or self._key is None:
            return 0
        return await self._db.run(rotate_tokens, self._old, self._key, self._wall())
