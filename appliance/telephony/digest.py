"""Digest access authentication (RFC 7616, as SIP uses it in RFC 3261 section 22), server side.

A line that wants callers to prove who they are (a PBX sending INVITEs) answers an unproven
request with `challenge()` and checks the retry's `Authorization` value with `verify()`. Nonces
are stateless (a timestamp and its HMAC under a per-process secret) and expire after
`nonce_ttl_s`; each nonce's highest nonce-count is remembered, so a captured answer cannot be
replayed while its nonce is still fresh. The answer's `uri` must be the request's own URI
(RFC 7616 section 3.4.6): an answer computed for another URI (captured from a request to another
address, say) proves nothing about this request.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import re
import secrets
from collections import OrderedDict
from dataclasses import dataclass

from appliance.clock import Clock

__all__ = ["DigestAuth", "DigestOutcome", "parse_digest"]

_PARAM = re.compile(r'([A-Za-z][A-Za-z0-9_-]*)\s*=\s*("(?:[^"\\]|\\.)*"|[^,\s]*)')
_HASHES = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}
_REMEMBERED_NONCES = 1024
_MAX_HEADER = 4096


class DigestOutcome(enum.Enum):
    OK = "ok"
    MISSING = "missing"
    STALE = "stale"
    """Right password, but the nonce has expired: the client should retry with a new one."""
    WRONG = "wrong"


def parse_digest(value: str) -> dict[str, str] | None:
    """`Digest k=v, k="v"` -> {k: v}; None when it is not a Digest value."""
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "digest" or len(value) > _MAX_HEADER:
        return None
    params: dict[str, str] = {}
    for key, raw in _PARAM.findall(rest):
        text = raw[1:-1].replace('\\"', '"').replace("\\\\", "\\") if raw.startswith('"') else raw
        params[key.lower()] = text
    return params


@dataclass(frozen=True, slots=True)
class _Nonce:
    issued: int
    """Seconds since the epoch."""


class DigestAuth:
    """One username and password, checked with qop=auth digests (MD5 or SHA-256)."""

    def __init__(
        self,
        *,
        username: str,
        password: str,
        realm: str,
        clock: Clock,
        nonce_ttl_s: float = 300.0,
    ) -> None:
        self.realm = realm
        self._username = username
        self._ha1 = {
            name: fn(f"{username}:{realm}:{password}".encode()).hexdigest()
            for name, fn in _HASHES.items()
        }
        self._clock = clock
        self._ttl = nonce_ttl_s
        self._secret = secrets.token_bytes(32)
        self._counts: OrderedDict[str, int] = OrderedDict()

    def challenge(self, *, stale: bool = False) -> str:
        """A `WWW-Authenticate` value with a fresh nonce."""
        issued = f"{int(self._clock.wall()):x}"
        nonce = issued + self._sign(issued)
        extra = ", stale=true" if stale else ""
        return f'Digest realm="{self.realm}", nonce="{nonce}", algorithm=MD5, qop="auth"{extra}'

    def verify(self, method: str, authorization: str | None, *, uri: str) -> DigestOutcome:
        """Check an `Authorization` value sent with a request of `method` to `uri` (its
        Request-URI, as sent)."""
        if authorization is None:
            return DigestOutcome.MISSING
        params = parse_digest(authorization)
        if params is None:
            return DigestOutcome.WRONG
        algorithm = params.get("algorithm", "MD5").upper()
        nonce = params.get("nonce", "")
        issued = self._issued(nonce)
        if (
            algorithm not in _HASHES
            or issued is None
            or params.get("realm") != self.realm
            or params.get("uri") != uri
            or not hmac.compare_digest(params.get("username", ""), self._username)
        ):
            return DigestOutcome.WRONG
        if not hmac.compare_digest(params.get("response", ""), self._expected(method, params)):
            return DigestOutcome.WRONG
        if self._clock.wall() - issued.issued > self._ttl:
            return DigestOutcome.STALE
        return DigestOutcome.OK if self._fresh_count(nonce, params) else DigestOutcome.WRONG

    def _expected(self, method: str, params: dict[str, str]) -> str:
        algorithm = params.get("algorithm", "MD5").upper()
        digest = _HASHES[algorithm]
        ha2 = digest(f"{method}:{params.get('uri', '')}".encode()).hexdigest()
        ha1 = self._ha1[algorithm]
        nonce = params.get("nonce", "")
        if params.get("qop") == "auth":
            text = f"{ha1}:{nonce}:{params.get('nc', '')}:{params.get('cnonce', '')}:auth:{ha2}"
        else:
            text = f"{ha1}:{nonce}:{ha2}"
        return digest(text.encode()).hexdigest()

    def _fresh_count(self, nonce: str, params: dict[str, str]) -> bool:
        """Whether this nonce-count is higher than any seen for the nonce (replay guard)."""
        try:
            count = int(params.get("nc", "0") or "0", 16)
        except ValueError:
            return False
        if count <= self._counts.get(nonce, -1):
            return False
        self._counts[nonce] = count
        self._counts.move_to_end(nonce)
        while len(self._counts) > _REMEMBERED_NONCES:
            self._counts.popitem(last=False)
        return True

    def _sign(self, text: str) -> str:
        return hmac.new(self._secret, text.encode(), hashlib.sha256).hexdigest()[:32]

    def _issued(self, nonce: str) -> _Nonce | None:
        issued, signature = nonce[:-32], nonce[-32:]
        if not issued or not hmac.compare_digest(signature, self._sign(issued)):
            return None
        try:
            return _Nonce(int(issued, 16))
        except ValueError:
            return None
