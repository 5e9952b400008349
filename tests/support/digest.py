"""A hand-wound clock and a digest client written from RFC 2617, for the auth tests."""

from __future__ import annotations

import hashlib

from appliance.telephony.digest import parse_digest


class ManualClock:
    """A Clock that moves only when a test moves it (`t`, seconds)."""

    def __init__(self) -> None:
        self.t = 1_800_000_000.0

    def now(self) -> float:
        return self.t

    def wall(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.t += seconds

    async def sleep_until(self, deadline: float) -> None:
        self.t = max(self.t, deadline)


def digest_answer(
    challenge: str,
    *,
    user: str,
    password: str,
    method: str = "INVITE",
    uri: str = "sip:tel3sis@127.0.0.1",
    nc: str = "00000001",
    cnonce: str = "0a4f113b",
    algorithm: str = "MD5",
) -> str:
    """What a UA sends back (RFC 2617 section 3.2.2, qop=auth)."""
    params = parse_digest(challenge)
    assert params is not None
    h = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}[algorithm]
    ha1 = h(f"{user}:{params['realm']}:{password}".encode()).hexdigest()
    ha2 = h(f"{method}:{uri}".encode()).hexdigest()
    nonce = params["nonce"]
    response = h(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}".encode()).hexdigest()
    return (
        f'Digest username="{user}", realm="{params["realm"]}", nonce="{nonce}", uri="{uri}", '
        f'response="{response}", algorithm={algorithm}, qop=auth, nc={nc}, cnonce="{cnonce}"'
    )
